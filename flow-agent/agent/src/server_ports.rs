//! The server-port bitmap the release program reads to tell inbound from outbound.
//!
//! The bind programs set a port's bit when a TCP socket binds it, so a new server's
//! first connection is already inbound. User space keeps the map true over time: once
//! per interval it writes the ports it sees listening (`sock_diag`), plus the bits set
//! by binds since its last write, so a bound port gets one interval to start listening
//! and is cleared if it did not (a client that bound a port, or a server that stopped).

use aya::maps::{Array, MapData};
use paved_flow_common::{PORT_WORDS, PortBits, names, port_bit};

use crate::ProbeError;

/// The server-port map and what user space last wrote to it.
pub struct ServerPorts {
    map: Array<MapData, PortBits>,
    written: Box<PortBits>,
}

impl ServerPorts {
    /// Wraps the object's map (`names::SERVER_PORTS_MAP`).
    pub fn new(map: Array<MapData, PortBits>) -> Self {
        Self {
            map,
            written: Box::new([0; PORT_WORDS]),
        }
    }

    /// Rewrites the map from the ports listening now; returns the bits written.
    pub fn refresh(
        &mut self,
        listening: impl IntoIterator<Item = u16>,
    ) -> Result<&PortBits, ProbeError> {
        let map_error = |source| ProbeError::Map {
            map: names::SERVER_PORTS_MAP,
            source,
        };
        let now = self.map.get(&0, 0).map_err(map_error)?;
        let next = next_bits(&now, &self.written, listening);
        self.map.set(0, next, 0).map_err(map_error)?;
        *self.written = next;
        Ok(&self.written)
    }
}

/// The bitmap to write: the listening ports, plus the bits in `now` (the kernel's map)
/// that were not in `written` (what user space wrote last time) — ports bound since.
fn next_bits(
    now: &PortBits,
    written: &PortBits,
    listening: impl IntoIterator<Item = u16>,
) -> PortBits {
    let mut next = [0u64; PORT_WORDS];
    for ((next, now), written) in next.iter_mut().zip(now).zip(written) {
        *next = now & !written;
    }
    for port in listening {
        let (word, bit) = port_bit(port);
        next[word] |= bit;
    }
    next
}

#[cfg(test)]
mod tests {
    use paved_flow_common::has_port;

    use super::*;

    fn bits(ports: &[u16]) -> PortBits {
        next_bits(&[0; PORT_WORDS], &[0; PORT_WORDS], ports.iter().copied())
    }

    #[test]
    fn listening_ports_are_set() {
        let b = bits(&[80, 8080, 65_535]);
        assert!(has_port(&b, 80) && has_port(&b, 8080) && has_port(&b, 65_535));
        assert!(!has_port(&b, 81));
    }

    #[test]
    fn a_port_bound_since_the_last_refresh_is_kept_once_then_cleared_unless_listening() {
        let written = bits(&[80]);
        // The kernel marked 9000 (a bind) after the last refresh.
        let mut now = written;
        let (word, bit) = port_bit(9000);
        now[word] |= bit;
        let next = next_bits(&now, &written, [80]);
        assert!(has_port(&next, 9000), "a fresh bind gets one interval");
        // Nothing listens on 9000 at the next refresh: it is cleared.
        let after = next_bits(&next, &next, [80]);
        assert!(!has_port(&after, 9000));
        assert!(has_port(&after, 80));
    }

    #[test]
    fn a_listener_that_went_away_is_cleared() {
        let written = bits(&[80, 443]);
        let next = next_bits(&written, &written, [443]);
        assert!(!has_port(&next, 80));
        assert!(has_port(&next, 443));
    }
}
