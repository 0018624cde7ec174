//! CPU time of the calling thread: what one thread did, whatever else ran on the machine.

/// CPU seconds the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`, nanosecond
/// resolution), user and system time together.
pub fn seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}
