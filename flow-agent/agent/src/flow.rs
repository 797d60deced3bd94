//! Facts about one record used across the pipeline: its flow's identity, its endpoints
//! as addresses, its service port.

use std::net::{IpAddr, Ipv6Addr};

use paved_flow_common::{Direction, FlowRecord};
use paved_flow_proto as proto;

/// What identifies one connection across its interim and final records: both endpoints
/// and either the open's timestamp (per-connection mode) or the socket's cookie
/// (aggregate mode, where the open is not seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    start_ns: u64,
    cookie: u64,
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
}

impl FlowId {
    /// The identity of `record`'s connection.
    pub fn of(record: &FlowRecord) -> Self {
        Self {
            start_ns: record.start_ns,
            cookie: record.cookie,
            saddr: record.saddr,
            daddr: record.daddr,
            sport: record.sport,
            dport: record.dport,
        }
    }
}

/// A 16-byte address as the kernel stores it, with v4-mapped addresses as IPv4.
pub fn ip(bytes: [u8; 16]) -> IpAddr {
    Ipv6Addr::from(bytes).to_canonical()
}

/// The server's port: remote for outbound (and unknown), local for inbound.
pub fn service_port(record: &FlowRecord) -> u16 {
    match record.direction() {
        Direction::Inbound => record.sport,
        Direction::Outbound | Direction::Unknown => record.dport,
    }
}

/// The wire form of a direction.
pub fn wire_direction(direction: Direction) -> proto::Direction {
    match direction {
        Direction::Outbound => proto::Direction::Outbound,
        Direction::Inbound => proto::Direction::Inbound,
        Direction::Unknown => proto::Direction::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn v4_mapped_addresses_become_ipv4() {
        let mapped = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets();
        assert_eq!(ip(mapped), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(
            ip(Ipv6Addr::LOCALHOST.octets()),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
    }

    #[test]
    fn the_service_port_is_the_servers() {
        let mut record = FlowRecord::zeroed();
        record.sport = 8080;
        record.dport = 51_000;
        record.direction = Direction::Inbound as u8;
        assert_eq!(service_port(&record), 8080);
        record.direction = Direction::Outbound as u8;
        assert_eq!(service_port(&record), 51_000);
    }
}
