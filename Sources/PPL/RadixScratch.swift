import Glibc

/// The radix sort's O(n) buffer. A large one is mapped directly and
/// advised to use transparent huge pages (MADV_HUGEPAGE): the parallel
/// scatter writes to hundreds of places across it at once, and 2 MiB
/// pages take far fewer page faults and TLB misses than 4 KiB ones. A
/// small one, or one the kernel refuses to map, comes from the allocator.
@usableFromInline
struct RadixScratch<T> {
    @usableFromInline let base: UnsafeMutablePointer<T>
    @usableFromInline let mappedBytes: Int

    /// Buffers of at least this many bytes are mapped (below it the
    /// allocator is as fast and wastes no page).
    @usableFromInline static var mapMinBytes: Int { 4 << 20 }

    @inlinable
    init(capacity: Int) {
        let bytes = capacity * MemoryLayout<T>.stride
        if bytes >= Self.mapMinBytes && MemoryLayout<T>.alignment <= 4096,
           let p = radixMapScratch(bytes) {
            base = p.bindMemory(to: T.self, capacity: capacity)
            mappedBytes = bytes
        } else {
            base = UnsafeMutablePointer<T>.allocate(capacity: capacity)
            mappedBytes = 0
        }
    }

    /// Frees the buffer; its elements must all have been moved out.
    @inlinable
    func release() {
        if mappedBytes > 0 { radixUnmapScratch(UnsafeMutableRawPointer(base), mappedBytes) } else { base.deallocate() }
    }
}

/// Maps `bytes` of zeroed private anonymous memory advised for huge pages;
/// nil if the kernel refuses.
@usableFromInline
func radixMapScratch(_ bytes: Int) -> UnsafeMutableRawPointer? {
    guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
        return nil
    }
    // Advice only: without THP the mapping works with small pages.
    _ = madvise(p, bytes, MADV_HUGEPAGE)
    return p
}

@usableFromInline
func radixUnmapScratch(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
    let r = munmap(p, bytes)
    precondition(r == 0, "munmap of the radix sort's buffer failed: errno \(errno)")
}
