//! Keeping freed memory in the process.
//!
//! Every training step frees and re-allocates the same activation buffers (megabytes each).
//! glibc's defaults hand them back to the kernel -- large blocks through mmap/munmap, the top of
//! the heap by trimming it -- and the next step page-faults every page in again, zeroed by the
//! kernel. On the fmnist loop that was 60,000 page faults a step (2.4 M over 40 steps; a
//! channels-last stem made it worse) and ~10 % of the loop's time. Tuned once at start-up, the
//! freed blocks stay mapped and are reused: fmnist loop 551 -> 619 img/s, page faults
//! 2.23 M -> 0.25 M (40 steps, mostly start-up); ResNet-18 CIFAR steps ~1-2 % faster. Peak
//! resident memory is unchanged within 4 %: the buffers are the same ones, only kept.

/// Largest block glibc takes from the heap instead of its own mmap (glibc's upper bound for the
/// setting); larger ones are mapped and unmapped each time, as before.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap is returned to the kernel only beyond this.
const TRIM_THRESHOLD: i32 = 1 << 30;
/// Extra memory taken whenever the heap grows, so that it grows in few steps.
const TOP_PAD: i32 = 64 << 20;

/// Sets glibc's malloc to keep freed memory for reuse (see the module documentation). Call once,
/// first thing in `main`; returns whether glibc took every setting. Does nothing elsewhere, nor
/// with UNMIX_MALLOC_DEFAULTS=1 in the environment (glibc's defaults: the other path, which a test
/// runs to show the results do not depend on it).
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("UNMIX_MALLOC_DEFAULTS").is_some_and(|v| v == "1") {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's tuning parameters; it is called from `main` before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_every_setting() {
        // mallopt refuses values out of its range (an mmap threshold above 32 MiB, say) and
        // returns 0; every setting here must be within range.
        assert!(super::keep_freed_memory());
        // Allocating and freeing a block between the default threshold (128 KiB) and ours still
        // works as ordinary heap memory.
        let v = vec![7u8; 20 << 20];
        assert_eq!(v.iter().map(|&b| b as u64).sum::<u64>(), 7 * (20 << 20));
    }
}
