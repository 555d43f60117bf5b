//! The input format of the pipeline targets: records
//! `[dt: 1 byte][flags: 1 byte][len: 1 byte][len bytes]`, the last one cut
//! short by the end of the input. `dt` advances the clock in 100 ms steps;
//! what the flags mean is up to the target.

use std::time::Duration;

pub struct Record<'a> {
    pub dt: Duration,
    pub flags: u8,
    pub frame: &'a [u8],
}

pub fn records(mut rest: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let [dt, flags, len, tail @ ..] = rest else { return None };
        let (frame, next) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = next;
        Some(Record { dt: Duration::from_millis(u64::from(*dt) * 100), flags: *flags, frame })
    })
}
