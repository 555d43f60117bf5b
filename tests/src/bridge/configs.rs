//! Every rule set the bridge tests use, in one place: ctwall's RON configurations and the
//! equivalent nftables rule set for the kernel reference (a Linux bridge with br_netfilter).
//!
//! The RON schema of `ctwall run` is provisional: if a field is renamed, change it here only.
//! [`example`] mirrors `config/examples/bridge.ron` with the test interface names.

/// The inside port (towards host A) in the firewall namespace.
pub const INSIDE: &str = "fwin";
/// The outside port (towards host B) in the firewall namespace.
pub const OUTSIDE: &str = "fwout";

/// A rule set for one test run: ctwall's configuration and what the kernel reference needs to
/// mean the same.
#[derive(Clone, Debug)]
pub struct FwConfig {
    /// `ctwall run --config` file contents.
    pub ron: String,
    /// Whether the FTP helper is attached to TCP port 21 (kernel reference: `ct helper set`).
    pub ftp_helper: bool,
    /// Whether inside→outside ICMP is dropped (kernel reference).
    pub drop_icmp_out: bool,
}

fn helpers_line(ftp: bool) -> &'static str {
    if ftp {
        r#"  helpers: [(helper: "ftp", ports: [21]), (helper: "tftp", ports: [69])],"#
    } else {
        r#"  helpers: [(helper: "tftp", ports: [69])],"#
    }
}

/// `config/examples/bridge.ron` as shipped: what a user runs.
const EXAMPLE: &str = include_str!("../../../config/examples/bridge.ron");

/// Replaces `from` (which must be there) with `to` in `text`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "config/examples/bridge.ron no longer contains {from:?}: update tests/src/bridge/configs.rs"
    );
    text.replacen(from, to, 1)
}

/// `config/examples/bridge.ron` itself, with the test's interface names: inside may open
/// anything (with a SYN for TCP), outside only gets ESTABLISHED and RELATED, NTP's and
/// neighbour discovery's UNTRACKED packets, and a reject for ident; FTP helper on 21, TFTP on
/// 69.
pub fn example() -> FwConfig {
    let ron = edit(
        EXAMPLE,
        r#"interfaces: (inside: "veth-in", outside: "veth-out")"#,
        &format!(r#"interfaces: (inside: "{INSIDE}", outside: "{OUTSIDE}")"#),
    );
    FwConfig { ron, ftp_helper: true, drop_icmp_out: false }
}

/// [`example`] without the FTP helper: active FTP's data connection (outside→inside, NEW) has
/// nothing to make it RELATED and is dropped.
pub fn example_without_ftp_helper() -> FwConfig {
    let ron = edit(
        &example().ron,
        r#"helpers: [(helper: "ftp", ports: [21]), (helper: "tftp", ports: [69])]"#,
        r#"helpers: [(helper: "tftp", ports: [69])]"#,
    );
    FwConfig { ron, ftp_helper: false, drop_icmp_out: false }
}

/// A valid change of [`example`] for the reload test: ICMP from inside is dropped too, which
/// the test observes (ping A→B stops working) to know that the reload took effect.
pub fn example_reloaded_no_icmp() -> FwConfig {
    let mut cfg = FwConfig { drop_icmp_out: true, ..example() };
    insert_rule(&mut cfg, "in-open", r#"(name: "in-no-icmp", match: (proto: "icmp"), action: "drop")"#);
    cfg
}

/// Sets the top-level setting `key` of `cfg` to `value`: replaces the line of an existing
/// `key:` (top-level settings are indented by four spaces in the example) or adds one after
/// the opening parenthesis. Returns the 1-based line of the setting.
pub fn set(cfg: &mut FwConfig, key: &str, value: &str) -> usize {
    let line = format!("    {key}: {value},");
    let mut lines: Vec<String> = cfg.ron.lines().map(str::to_string).collect();
    let at = match lines.iter().position(|l| l.starts_with(&format!("    {key}:"))) {
        Some(i) => {
            // A value spread over several lines ends before the next top-level line.
            let end = if lines[i].trim_end().ends_with(',') {
                i + 1
            } else {
                lines[i + 1..].iter().position(|l| l.starts_with("    ),")).map_or(lines.len(), |n| i + 2 + n)
            };
            lines.splice(i..end, [line]);
            i
        }
        None => {
            let open = lines.iter().position(|l| l == "(").expect("the configuration opens with a line '('");
            lines.insert(open + 1, line);
            open + 1
        }
    };
    cfg.ron = lines.join("\n") + "\n";
    at + 1
}

/// Adds `rule` to `cfg` just before the rule named `before`.
pub fn insert_rule(cfg: &mut FwConfig, before: &str, rule: &str) {
    let at = format!("(name: \"{before}\",");
    cfg.ron = edit(&cfg.ron, &at, &format!("{rule},\n                {at}"));
}

/// Strict in both directions for FTP: a NEW connection may only go to TCP port 21 from inside;
/// everything else must be ESTABLISHED or RELATED. Both FTP data connections (active: B→A,
/// passive: A→B) then cross only as RELATED. Used by ctwall-only tests (the kernel reference
/// rules do not model it).
pub fn strict_ftp(ftp_helper: bool) -> FwConfig {
    let ron = format!(
        r#"(
  interfaces: (inside: "{INSIDE}", outside: "{OUTSIDE}"),
{helpers}
  filter: (
    inside_to_outside: (policy: "drop", rules: [
      (name: "in-est", match: (ctstate: ["ESTABLISHED"]), action: "accept"),
      (name: "in-rel", match: (ctstate: ["RELATED"]), action: "accept"),
      (name: "in-ftp", match: (ctstate: ["NEW"], proto: "tcp", dport: [21], syn: true), action: "accept"),
    ]),
    outside_to_inside: (policy: "drop", rules: [
      (name: "out-est", match: (ctstate: ["ESTABLISHED"]), action: "accept"),
      (name: "out-rel", match: (ctstate: ["RELATED"]), action: "accept"),
    ]),
  ),
)
"#,
        helpers = helpers_line(ftp_helper)
    );
    FwConfig { ron, ftp_helper, drop_icmp_out: false }
}

/// The line of [`broken`] that holds the syntax error (1-based).
pub const BROKEN_LINE: usize = 2;

/// [`example`] with a syntax error on line [`BROKEN_LINE`].
pub fn broken() -> String {
    let good = example().ron;
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(BROKEN_LINE - 1, "  @@ this is not RON @@");
    lines.join("\n") + "\n"
}

/// The kernel reference's nftables rule set with the same meaning as `cfg` (the example's
/// filter chains; the strict FTP rules are not modelled), for a Linux bridge with
/// `bridge-nf-call-iptables=1`. Direction is told by the source address (host B is the
/// outside), which is equivalent here because only hosts A and B send.
pub fn kernel_nft(cfg: &FwConfig, b_ip4: &str, b_ip6: &str) -> String {
    let ftp_helper = if cfg.ftp_helper { "    tcp dport 21 ct helper set \"ftp21\"\n" } else { "" };
    let no_icmp = if cfg.drop_icmp_out { "    meta l4proto icmp drop\n" } else { "" };
    format!(
        r#"table inet ctwref {{
  ct helper ftp21 {{ type "ftp" protocol tcp; }}
  ct helper tftp69 {{ type "tftp" protocol udp; }}
  chain ctw_pre {{
    type filter hook prerouting priority 0; policy accept;
{ftp_helper}    udp dport 69 ct helper set "tftp69"
  }}
  chain ctw_forward {{
    type filter hook forward priority 0; policy accept;
    ip saddr {b_ip4} jump ctw_out2in
    ip6 saddr {b_ip6} jump ctw_out2in
    ct state invalid drop
    ct state new tcp flags & (fin|syn|rst|ack) != syn drop
{no_icmp}  }}
  chain ctw_out2in {{
    ct state invalid drop
    ct state established accept
    ct state related accept
    ct state untracked udp sport 123 accept
    ct state untracked icmpv6 type {{ mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report }} accept
    tcp dport 113 reject with tcp reset
    drop
  }}
}}
"#
    )
}
