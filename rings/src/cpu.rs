//! CPU affinity of worker threads, through `core_affinity`
//! (`sched_getaffinity`/`sched_setaffinity` on Linux).

use std::io;

/// The CPUs the calling thread may run on (its affinity mask, which a
/// cgroup cpuset or `taskset` may have narrowed), in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let ids = core_affinity::get_core_ids().ok_or_else(|| io::Error::other("sched_getaffinity failed"))?;
    let mut cpus: Vec<usize> = ids.into_iter().map(|c| c.id).collect();
    cpus.sort_unstable();
    Ok(cpus)
}

/// Pin the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // core_affinity indexes a cpu_set_t without a bound check.
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is beyond the largest cpu number ({})", libc::CPU_SETSIZE - 1),
        ));
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("sched_setaffinity to cpu {cpu} failed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_narrows_the_allowed_set_of_this_thread_only() {
        let all = allowed_cpus().unwrap();
        assert!(!all.is_empty());
        let last = *all.last().unwrap();
        let main = all.clone();
        std::thread::spawn(move || {
            pin_current_thread(last).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![last]);
        })
        .join()
        .unwrap();
        assert_eq!(allowed_cpus().unwrap(), main, "the spawning thread keeps its mask");
        assert_eq!(pin_current_thread(1 << 20).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
