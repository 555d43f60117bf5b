//! 32-bit sequence number comparison with wrap-around ([RFC 9293 § 3.4]).
//!
//! [RFC 9293 § 3.4]: https://www.rfc-editor.org/rfc/rfc9293#section-3.4

/// `a` is before `b` (`(i32)(a - b) < 0`).
#[inline]
pub const fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` is after `b`.
#[inline]
pub const fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        assert!(before(1, 2));
        assert!(!before(2, 2));
        assert!(before(u32::MAX, 0));
        assert!(after(0, u32::MAX));
        assert!(after(5, 0x8000_0000) == before(0x8000_0000, 5));
    }
}
