/// Metric naming: a statistics field name in camelCase becomes a
/// Prometheus-style snake_case name under a prefix
/// (`tasksRun` → `concrt_tasks_run`, `kernelThreadsLive` → `ums_kernel_threads_live`).
enum MetricNames {
    /// `prefix` + `_` + `field` in snake_case. Runs of capitals stay one word
    /// (`HTTPServer` → `http_server`).
    static func name(prefix: String, field: String) -> String {
        precondition(!field.isEmpty, "MetricNames.name: empty field name")
        var out = ""
        let chars = Array(field)
        for (i, c) in chars.enumerated() {
            if c.isUppercase {
                let prevLower = i > 0 && (chars[i - 1].isLowercase || chars[i - 1].isNumber)
                let nextLower = i + 1 < chars.count && chars[i + 1].isLowercase
                let prevUpper = i > 0 && chars[i - 1].isUppercase
                if i > 0 && (prevLower || (prevUpper && nextLower)) { out.append("_") }
                out.append(contentsOf: c.lowercased())
            } else {
                out.append(c)
            }
        }
        return prefix + "_" + out
    }
}
