//! The connection table alone: bytes per connection, read from the
//! counting allocator around a table filled to capacity, and lookups per
//! second on one core.

use crate::alloc;
use ct_core::table::{Conntrack, Template};
use ct_core::tuple::{proto, Addr, Tuple, L3};
use ct_core::wire::parse_ip;
use ct_core::{CtConfig, Instant};
use std::time::Instant as Clock;

/// A table filled to capacity with UDP connections of one family.
pub(crate) struct Filled {
    pub(crate) ct: Conntrack,
    pub(crate) l3: L3,
    pub(crate) n: u32,
    /// Everything the table allocated, divided by its connections.
    pub(crate) bytes_per_conn: f64,
    /// Bytes allocated while the packets went in (none expected).
    pub(crate) fill_bytes: i64,
    pub(crate) fill_s: f64,
}

/// Flow `i`'s original tuple: unique for `i < 2^32`.
pub(crate) fn tuple(l3: L3, i: u32) -> Tuple {
    let b = i.to_be_bytes();
    let (src, dst) = match l3 {
        L3::V4 => (Addr::v4([10, b[1], b[2], b[3]]), Addr::v4([172, 16, b[0], 1])),
        L3::V6 => {
            let mut s = [0u8; 16];
            s[0] = 0xfd;
            s[12..].copy_from_slice(&b);
            let mut d = [0u8; 16];
            d[0] = 0xfd;
            d[15] = 1;
            (Addr::v6(s), Addr::v6(d))
        }
    };
    Tuple { l3, proto: proto::UDP, src, dst, sport: 1024 + (i % 60_000) as u16, dport: 53 }
}

/// Write flow `i`'s first packet (UDP, no checksum) into `buf`; returns its
/// length. No allocation.
fn packet(buf: &mut [u8; 48], t: &Tuple) -> usize {
    let udp = |buf: &mut [u8], t: &Tuple| {
        buf[..2].copy_from_slice(&t.sport.to_be_bytes());
        buf[2..4].copy_from_slice(&t.dport.to_be_bytes());
        buf[4..6].copy_from_slice(&8u16.to_be_bytes());
        buf[6..8].fill(0);
    };
    match t.l3 {
        L3::V4 => {
            buf[..12].copy_from_slice(&[0x45, 0, 0, 28, 0, 1, 0, 0, 64, proto::UDP, 0, 0]);
            buf[12..16].copy_from_slice(&t.src.v4_octets());
            buf[16..20].copy_from_slice(&t.dst.v4_octets());
            let c = ct_core::wire::checksum::checksum(&buf[..20], 0);
            buf[10..12].copy_from_slice(&c.to_be_bytes());
            udp(&mut buf[20..28], t);
            28
        }
        L3::V6 => {
            buf[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 8, proto::UDP, 64]);
            buf[8..24].copy_from_slice(&t.src.0);
            buf[24..40].copy_from_slice(&t.dst.0);
            udp(&mut buf[40..48], t);
            48
        }
    }
}

/// Make a table for `n` connections of family `l3` (and one of the other)
/// and fill it through the per-packet path.
pub(crate) fn fill(l3: L3, n: u32) -> Result<Filled, String> {
    let before = alloc::live_bytes();
    let (v4, v6) = if l3 == L3::V4 { (n, 1) } else { (1, n) };
    let cfg = CtConfig { max_entries: v4, max_entries_v6: v6, checksum: false, ..CtConfig::default() };
    let mut ct = Conntrack::new(cfg);
    let allocated = alloc::live_bytes();
    let t = Clock::now();
    let mut buf = [0u8; 48];
    let now = Instant::from_secs(1);
    for i in 0..n {
        let len = packet(&mut buf, &tuple(l3, i));
        let ip = parse_ip(&buf[..len]).map_err(|r| format!("flow {i}: {r:?}"))?;
        let o = ct.track(&ip, &Template::default(), now);
        if o.table_full || o.conn.is_none() {
            return Err(format!("flow {i} of {n} not admitted: {o:?}"));
        }
        ct.confirm(&o, now);
    }
    let fill_s = t.elapsed().as_secs_f64();
    if ct.count() != n as usize {
        return Err(format!("{} entries after {n} flows", ct.count()));
    }
    let after = alloc::live_bytes();
    Ok(Filled {
        ct,
        l3,
        n,
        bytes_per_conn: (after - before) as f64 / f64::from(n),
        fill_bytes: after - allocated,
        fill_s,
    })
}

/// Time `count` calls of `look` on flows scattered over `0..n`; returns
/// calls per second, or the first miss.
fn scattered(n: u32, count: u32, mut look: impl FnMut(u32) -> Result<(), String>) -> Result<f64, String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let t = Clock::now();
    for _ in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        look((x % u64::from(n)) as u32)?;
    }
    Ok(f64::from(count) / t.elapsed().as_secs_f64())
}

/// Look up `count` tuples of the filled table in the index (lock-free), in
/// a scattered order; returns lookups per second (every one must hit).
pub(crate) fn lookups(f: &Filled, count: u32) -> Result<f64, String> {
    scattered(f.n, count, |i| match f.ct.lookup(0, &tuple(f.l3, i)) {
        Some(_) => Ok(()),
        None => Err(format!("flow {i} not found")),
    })
}

/// The same lookups in a `std::collections::HashMap` of the same tuples
/// (single-threaded, no locks, no expiry): what this machine's memory
/// allows a plain hash table, for scale.
pub(crate) fn hashmap_lookups(l3: L3, n: u32, count: u32) -> Result<f64, String> {
    let mut m = std::collections::HashMap::with_capacity(n as usize);
    for i in 0..n {
        m.insert(tuple(l3, i), i);
    }
    scattered(n, count, |i| match m.get(&tuple(l3, i)) {
        Some(&v) if v == i => Ok(()),
        _ => Err(format!("flow {i} not in the HashMap")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 5: at most 128 bytes per IPv4 connection and 192 per IPv6
    /// connection, all-in (entry, both index nodes, timer links, bucket
    /// heads, the fixed parts shared out), read from the allocator; and no
    /// allocation on the packet path while the table fills.
    #[test]
    fn bytes_per_connection_within_budget() {
        for (l3, n, budget) in [(L3::V4, 1 << 20, 128.0), (L3::V6, 1 << 18, 192.0)] {
            let f = fill(l3, n).unwrap();
            eprintln!("{l3:?}: {:.1} bytes per connection ({n} connections)", f.bytes_per_conn);
            assert!(f.bytes_per_conn <= budget, "{l3:?}: {:.1} bytes per connection", f.bytes_per_conn);
            assert!(f.bytes_per_conn > 64.0, "{l3:?}: the table was not counted");
            assert_eq!(f.fill_bytes, 0, "{l3:?}: the packet path allocated");
            assert!(lookups(&f, 10_000).unwrap() > 0.0);
        }
    }
}
