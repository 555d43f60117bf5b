//! The kernel-vs-ctwall differential tests: one test per scenario.
//!
//! Needs root, `ip`, `nft` and `python3` (otherwise each test prints `SKIPPED (needs root)` and
//! passes, unless `CTWALL_REQUIRE_ROOT=1`), and the `ctwall` binary built into the same target
//! directory: `cargo build --bins && cargo test -p tests`.

macro_rules! differential {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                tests::run_differential(stringify!($name));
            }
        )*

        /// Every scenario has a test here and every test a scenario.
        #[test]
        fn every_scenario_has_a_test() {
            let listed: std::collections::BTreeSet<&str> = [$(stringify!($name)),*].into_iter().collect();
            let known: std::collections::BTreeSet<&str> = tests::scenarios::all().into_iter().map(|(n, _)| n).collect();
            assert_eq!(listed, known, "the test list and scenarios::all() differ");
        }
    };
}

differential!(
    tcp_handshake,
    tcp_data_unacked,
    tcp_data_acked,
    tcp_fin_wait,
    tcp_close_wait,
    tcp_last_ack,
    tcp_time_wait,
    tcp_combined_fin_close,
    tcp_reopen_time_wait,
    tcp_reopen_time_wait_reply_dir,
    tcp_syn_retrans_no_refresh,
    tcp_syn_retrans_expiry,
    tcp_syn_retrans_after_synack,
    tcp_port_closed_rst,
    tcp_port_closed_then_syn,
    tcp_simultaneous_open_s2,
    tcp_simultaneous_open,
    tcp_synack_without_syn,
    tcp_invalid_first_packets,
    tcp_pickup_first_ack,
    tcp_pickup_reply,
    tcp_pickup_assured,
    tcp_pickup_liberal_window,
    tcp_loose_off,
    tcp_invalid_flag_combos,
    tcp_valid_odd_flags,
    tcp_ack_in_syn_sent,
    tcp_synack_bad_ack_then_good,
    tcp_rst_exact,
    tcp_rst_below_maxack,
    tcp_rst_below_maxack_ignore_invalid,
    tcp_rst_inexact_in_window,
    tcp_rst_inexact_then_challenge_ack,
    tcp_rst_challenge_ack_then_exact,
    tcp_rst_out_of_window,
    tcp_rst_just_past_right_edge,
    tcp_rst_inexact_while_closing,
    tcp_data_far_out_of_window,
    tcp_data_slightly_beyond_window,
    tcp_ack_of_unseen_data,
    tcp_be_liberal,
    tcp_old_retransmission,
    tcp_retrans_counter_3,
    tcp_retrans_counter_4,
    tcp_retrans_counter_reset,
    tcp_stale_established_resync,
    tcp_stale_established_reuse,
    tcp_syn_in_last_ack_challenge,
    tcp_syn_sent_challenge_ack_rst,
    tcp_wscale_sack,
    tcp_zero_window,
    tcp_bad_checksum,
    tcp_bad_checksum_checksum_off,
    tcp_short_header,
    ipv6_tcp_handshake_close,
    ipv6_tcp_ext_headers,
    vlan_tcp_handshake,
    ipv4_options_tcp,
    udp_request_reply,
    udp_stream_before_2s,
    udp_stream_assured,
    udp_unreplied_refresh,
    udp_expiry_reverse_new,
    udp_malformed,
    udp_checksum_off,
    udp_acct_counters,
    ipv6_udp_request_reply,
    ipv6_udp_zero_checksum,
    icmp_echo,
    icmp_unsolicited_and_unknown_types,
    icmp_query_types,
    icmp_bad_checksum,
    icmp_port_unreachable_udp,
    icmp_error_about_reply_direction,
    icmp_error_unknown_connection,
    icmp_error_outer_dst_mismatch,
    icmp_time_exceeded_tcp_syn,
    icmp_frag_needed_tcp,
    icmp_error_types_udp,
    icmp_error_truncated_quotes,
    icmp_error_quoting_fragment,
    icmp_error_about_echo,
    icmp_error_bad_checksum,
    icmpv6_echo,
    icmpv6_unsolicited_and_unknown,
    icmpv6_nd_mld_untracked,
    icmpv6_packet_too_big,
    icmpv6_dest_unreachable_udp,
    icmpv6_redirect,
    ftp_active_port,
    ftp_active_port_expectation,
    ftp_active_eprt,
    ftp_passive_227,
    ftp_passive_229,
    ftp_port_other_address,
    ftp_port_other_address_loose,
    ftp_port_split_segments,
    ftp_pasv_split_segments,
    ftp_second_port_replaces_first,
    ftp_command_not_at_segment_start,
    ftp_no_helper,
    ftp_malformed_commands,
    ftp_ipv6_eprt_epsv,
    tftp_read,
    tftp_write,
    gre_v0,
    gre_v1_pptp,
    generic_proto_253,
    generic_esp_and_ipv6,
    non_ip_and_bad_ip_not_seen,
    custom_timeouts,
    custom_tcp_caps,
);
