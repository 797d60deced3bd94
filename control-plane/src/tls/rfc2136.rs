//! [`Rfc2136Dns`]: a [`DnsProvider`] sending RFC 2136 dynamic updates, signed with TSIG
//! (hmac-sha256, RFC 8945), to the authoritative server of one zone. BIND (`update-policy` or
//! `allow-update { key ...; }`), Knot (`acl: action: update`) and PowerDNS (`TSIG-ALLOW-DNSUPDATE`)
//! accept them.
//!
//! Each call is one UPDATE message over UDP (hickory), so a change is atomic on the server;
//! the server's answer must carry a valid TSIG too, or the call fails.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use hickory_net::client::Client;
use hickory_net::proto::op::{DnsRequest, Message, ResponseCode, UpdateMessage, update_message};
use hickory_net::proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_net::proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_net::proto::rr::{DNSClass, Name, RData, Record, RecordSet, RecordType, TSigner};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle;

use super::{DnsProvider, TlsError};
use crate::config::Rfc2136Settings;

/// Largest TTL accepted for a record (one day): these records change.
const MAX_TTL: u32 = 86_400;
/// Largest TXT value accepted (one character-string is 255 bytes; ACME values are 43).
const MAX_TXT_LEN: usize = 255;
/// Allowed clock difference between us and the server for TSIG (RFC 8945 recommends 300 s).
const TSIG_FUDGE: u16 = 300;

/// RFC 2136 dynamic updates, TSIG-signed, to one zone's authoritative server.
pub struct Rfc2136Dns {
    server: SocketAddr,
    zone: Name,
    signer: TSigner,
    timeout: Duration,
}

impl std::fmt::Debug for Rfc2136Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136Dns")
            .field("server", &self.server)
            .field("zone", &self.zone.to_ascii())
            .field("key", &self.signer.signer_name().to_ascii())
            .finish_non_exhaustive()
    }
}

fn parse_fqdn(text: &str) -> Result<Name, String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 253 || text.contains(char::is_whitespace) {
        return Err("expected a DNS name".into());
    }
    let mut name = Name::from_str(text).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// The uppercase mnemonic and meaning of an RCODE, such as `NOTAUTH (Not Authorized)`.
fn rcode_text(code: ResponseCode) -> String {
    format!("{} ({})", format!("{code:?}").to_uppercase(), code.to_str())
}

impl Rfc2136Dns {
    /// A provider for `settings` (fails on an unparsable zone, key name or secret).
    pub fn new(settings: &Rfc2136Settings) -> Result<Rfc2136Dns, TlsError> {
        let zone = parse_fqdn(&settings.zone)
            .map_err(|e| TlsError::Config(format!("zone `{}`: {e}", settings.zone)))?;
        let key_name = parse_fqdn(&settings.tsig_key_name).map_err(|e| {
            TlsError::Config(format!("TSIG key name `{}`: {e}", settings.tsig_key_name))
        })?;
        // The secret's text is never part of an error or a log line.
        let key = base64::engine::general_purpose::STANDARD
            .decode(settings.tsig_secret.expose().trim())
            .map_err(|_| TlsError::Config("the TSIG secret is not base64".into()))?;
        if key.len() < 16 {
            return Err(TlsError::Config(
                "the TSIG secret is shorter than 16 bytes".into(),
            ));
        }
        let signer = TSigner::new(key, TsigAlgorithm::HmacSha256, key_name, TSIG_FUDGE)
            .map_err(|e| TlsError::Config(format!("TSIG signer: {e}")))?;
        Ok(Rfc2136Dns {
            server: settings.server,
            zone,
            signer,
            timeout: settings.timeout,
        })
    }

    /// The zone updated.
    pub fn zone(&self) -> String {
        self.zone.to_ascii()
    }

    /// `name` as a name inside the zone, or an error naming it.
    fn name_in_zone(&self, name: &str, operation: &'static str) -> Result<Name, TlsError> {
        let parsed = parse_fqdn(name).map_err(|reason| TlsError::Dns {
            name: name.to_string(),
            operation,
            reason,
        })?;
        if !self.zone.zone_of(&parsed) {
            return Err(TlsError::Dns {
                name: name.to_string(),
                operation,
                reason: format!("outside the zone `{}`", self.zone.to_ascii()),
            });
        }
        Ok(parsed)
    }

    /// Sends one UPDATE and checks its answer: it must be TSIG-verified (hickory checks the
    /// answer's signature) and NOERROR.
    async fn send(
        &self,
        message: Message,
        name: &str,
        operation: &'static str,
    ) -> Result<(), TlsError> {
        let failed = |reason: String| TlsError::Dns {
            name: name.to_string(),
            operation,
            reason,
        };
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(self.timeout))
            .with_signer(Some(self.signer.clone()))
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let background = tokio::spawn(background);
        let mut responses = client.send(DnsRequest::from(message));
        let answer = tokio::time::timeout(self.timeout, responses.next()).await;
        background.abort();
        let response = match answer {
            Err(_) => {
                return Err(failed(format!(
                    "no answer from {} within {:?}",
                    self.server, self.timeout
                )));
            }
            Ok(None) => return Err(failed(format!("{} closed the exchange", self.server))),
            Ok(Some(Err(e))) => {
                // A server refusing our TSIG (wrong key name or secret: BADKEY/BADSIG)
                // answers NOTAUTH unsigned, which fails verification here.
                return Err(failed(format!(
                    "the answer of {} failed TSIG verification or did not arrive (is the TSIG \
                     key name or secret wrong? the server then answers NOTAUTH unsigned): {e}",
                    self.server
                )));
            }
            Ok(Some(Ok(response))) => response,
        };
        let code = response.response_code;
        if code != ResponseCode::NoError {
            return Err(TlsError::DnsRejected {
                name: name.to_string(),
                operation,
                rcode: rcode_text(code),
            });
        }
        tracing::debug!(name, operation, server = %self.server, "DNS update applied");
        Ok(())
    }
}

#[async_trait::async_trait]
impl DnsProvider for Rfc2136Dns {
    async fn set_txt(&self, name: &str, value: &str, ttl: Duration) -> Result<(), TlsError> {
        const OP: &str = "set TXT";
        let owner = self.name_in_zone(name, OP)?;
        if value.len() > MAX_TXT_LEN {
            return Err(TlsError::Dns {
                name: name.to_string(),
                operation: OP,
                reason: format!("TXT value longer than {MAX_TXT_LEN} bytes"),
            });
        }
        let ttl = u32::try_from(ttl.as_secs()).unwrap_or(MAX_TTL).min(MAX_TTL);
        let record = Record::from_rdata(owner, ttl, RData::TXT(TXT::new(vec![value.to_string()])));
        // No prerequisite: adding a present value is a no-op on the server.
        let message =
            update_message::append(RecordSet::from(record), self.zone.clone(), false, true);
        self.send(message, name, OP).await
    }

    async fn remove_txt(&self, name: &str, value: &str) -> Result<(), TlsError> {
        const OP: &str = "remove TXT";
        let owner = self.name_in_zone(name, OP)?;
        let record = Record::from_rdata(owner, 0, RData::TXT(TXT::new(vec![value.to_string()])));
        let message =
            update_message::delete_by_rdata(RecordSet::from(record), self.zone.clone(), true);
        self.send(message, name, OP).await
    }

    /// Replaces the address records of `name` in one UPDATE: A/AAAA when every target is an
    /// IP address, a CNAME when there is exactly one target and it is a host name.
    async fn point_at_gateways(&self, name: &str, targets: &[String]) -> Result<(), TlsError> {
        const OP: &str = "point at gateways";
        const TTL: u32 = 300;
        let owner = self.name_in_zone(name, OP)?;
        let invalid = |reason: String| TlsError::Dns {
            name: name.to_string(),
            operation: OP,
            reason,
        };
        if targets.is_empty() {
            return Err(invalid("no gateway address".into()));
        }
        let mut adds = Vec::with_capacity(targets.len());
        let ips: Vec<Option<IpAddr>> = targets.iter().map(|t| t.parse().ok()).collect();
        if ips.iter().all(Option::is_some) {
            for ip in ips.into_iter().flatten() {
                let data = match ip {
                    IpAddr::V4(v4) => RData::A(A(v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                };
                adds.push(Record::from_rdata(owner.clone(), TTL, data));
            }
        } else if let [host] = targets {
            let target = parse_fqdn(host).map_err(|e| invalid(format!("target `{host}`: {e}")))?;
            adds.push(Record::from_rdata(
                owner.clone(),
                TTL,
                RData::CNAME(CNAME(target)),
            ));
        } else {
            return Err(invalid(
                "targets must all be IP addresses, or be one host name (CNAME)".into(),
            ));
        }
        // Delete the A, AAAA and CNAME sets, then add: one message, so one atomic change.
        let mut message = update_message::delete_rrset(
            Record::update0(owner.clone(), 0, RecordType::A),
            self.zone.clone(),
            true,
        );
        for kind in [RecordType::AAAA, RecordType::CNAME] {
            let mut delete = Record::update0(owner.clone(), 0, kind);
            delete.dns_class = DNSClass::ANY;
            message.add_update(delete);
        }
        for mut add in adds {
            add.dns_class = DNSClass::IN;
            message.add_update(add);
        }
        self.send(message, name, OP).await
    }
}
