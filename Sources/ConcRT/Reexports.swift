// Types of the UMS layer that code on ConcRT contexts needs, re-exported so
// that the layers above (PPL) depend on ConcRT alone.
//
// `@_exported import struct` (a scoped re-export) rather than
// `public typealias MigrationSafeMutex = UMS.MigrationSafeMutex`: a
// typealias would be a second declaration of the same name, so a file that
// imports both ConcRT and UMS (several examples do) would find
// `MigrationSafeMutex` ambiguous. The scoped re-export adds no declaration:
// it is the UMS type itself, visible through `import ConcRT`, and nothing
// else from UMS comes with it.

// The lock for data shared by code on contexts: it has no thread identity,
// so it stays correct when its holder blocks and resumes on another
// pthread (see UMS's `MigrationSafeMutex`). [SRWLOCK, exclusive mode]
@_exported import struct UMS.MigrationSafeMutex
