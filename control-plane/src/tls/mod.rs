//! TLS automation behind traits.
//!
//! - [`CertificateIssuer`] issues a certificate for one domain. Implementations:
//!   [`InternalCa`] (an rcgen certificate authority whose root is created once and kept in the
//!   database; the default) and [`AcmeIssuer`] (RFC 8555, e.g. Let's Encrypt, with `dns-01`
//!   challenges completed through a [`DnsProvider`]).
//! - [`DnsProvider`] publishes DNS records (ACME challenges, app domains). Implementations:
//!   [`Rfc2136Dns`] (TSIG-signed RFC 2136 dynamic updates to an authoritative server: BIND,
//!   Knot, PowerDNS, ...). Hosted APIs (Route 53, Cloudflare) would be further implementations.
//! - [`CertificateManager`] keeps one valid certificate per app domain in the database,
//!   issuing missing ones and renewing those close to expiry; the compiled snapshot carries them
//!   in its TLS listeners.
//! - [`build_manager`] makes the manager with the issuer that
//!   [`crate::config::IssuerSettings`] selects.

pub mod acme;
pub mod rfc2136;

pub use acme::AcmeIssuer;
pub use rfc2136::Rfc2136Dns;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::storage::entities::certificate;

/// Why a certificate could not be issued or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The domain cannot go into a certificate.
    #[error("invalid domain `{domain}`: {reason}")]
    InvalidDomain {
        /// The domain.
        domain: String,
        /// Why.
        reason: String,
    },
    /// rcgen failed.
    #[error("certificate generation: {0}")]
    Generation(String),
    /// Stored material does not parse.
    #[error("stored certificate material is unreadable: {0}")]
    Stored(String),
    /// The issuer's or DNS provider's settings are unusable (bad key, unreadable CA bundle).
    #[error("TLS settings: {0}")]
    Config(String),
    /// A step of an ACME order failed.
    #[error("ACME certificate for `{domain}` failed at step `{step}`: {reason}")]
    Acme {
        /// The domain being certified (or the directory URL for account steps).
        domain: String,
        /// The step that failed.
        step: AcmeStep,
        /// What went wrong.
        reason: String,
    },
    /// A DNS update could not be sent or its answer is unusable.
    #[error("DNS {operation} of `{name}` failed: {reason}")]
    Dns {
        /// The record name.
        name: String,
        /// What was attempted (`set TXT`, `remove TXT`, `point at gateways`).
        operation: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The DNS server answered a DNS update with an error RCODE.
    #[error("DNS {operation} of `{name}` rejected by the server: {rcode}")]
    DnsRejected {
        /// The record name.
        name: String,
        /// What was attempted.
        operation: &'static str,
        /// The RCODE's mnemonic and meaning, such as `REFUSED (Query Refused)`.
        rcode: String,
    },
}

/// The steps of an ACME issuance, named in [`TlsError::Acme`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeStep {
    /// Creating or loading the ACME account.
    Account,
    /// Creating the order.
    Order,
    /// Fetching an authorization or finding its `dns-01` challenge.
    Authorization,
    /// Publishing the `_acme-challenge` TXT record.
    PublishChallenge,
    /// Telling the server the challenge is ready.
    ChallengeReady,
    /// Waiting for the order to become ready (the server validates the challenge).
    Validation,
    /// Sending the CSR.
    Finalize,
    /// Downloading the certificate chain.
    Download,
    /// Removing the `_acme-challenge` TXT record.
    RemoveChallenge,
    /// The overall time limit of one issuance passed.
    Timeout,
}

impl std::fmt::Display for AcmeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AcmeStep::Account => "account",
            AcmeStep::Order => "order",
            AcmeStep::Authorization => "authorization",
            AcmeStep::PublishChallenge => "publish dns-01 TXT record",
            AcmeStep::ChallengeReady => "challenge ready",
            AcmeStep::Validation => "validation",
            AcmeStep::Finalize => "finalize",
            AcmeStep::Download => "download certificate",
            AcmeStep::RemoveChallenge => "remove dns-01 TXT record",
            AcmeStep::Timeout => "overall timeout",
        })
    }
}

/// A certificate chain and its private key, for one domain.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The domain (exact or `*.example.com`).
    pub domain: String,
    /// PEM of the leaf certificate followed by its issuer chain.
    pub cert_pem: String,
    /// PEM (PKCS#8) of the private key.
    pub key_pem: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("domain", &self.domain)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Something that issues certificates for domains.
#[async_trait::async_trait]
pub trait CertificateIssuer: Send + Sync {
    /// A short name stored with each certificate (`internal-ca`, `acme`, ...).
    fn name(&self) -> &str;

    /// Issues a certificate for `domain`, valid for about `validity`.
    async fn issue(&self, domain: &str, validity: Duration) -> Result<IssuedCertificate, TlsError>;
}

/// Something that publishes DNS records, for ACME `dns-01` challenges and app domains
/// (implementations: see the module documentation).
#[async_trait::async_trait]
pub trait DnsProvider: Send + Sync {
    /// Adds the TXT record `name` = `value` (idempotent). Other values at `name` stay: ACME
    /// may need two at once (a wildcard and its base domain share `_acme-challenge.<base>`).
    async fn set_txt(&self, name: &str, value: &str, ttl: Duration) -> Result<(), TlsError>;
    /// Removes the TXT record `name` = `value` (nothing happens when it does not exist).
    async fn remove_txt(&self, name: &str, value: &str) -> Result<(), TlsError>;
    /// Points `name` at the gateways (A/AAAA or CNAME, as the provider sees fit).
    async fn point_at_gateways(&self, name: &str, targets: &[String]) -> Result<(), TlsError>;
}

/// Name of the internal CA in the `certificates` table and in its subject.
const CA_NAME: &str = "Paved internal CA";

/// An internal certificate authority made with rcgen (ECDSA P-256).
pub struct InternalCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa").finish_non_exhaustive()
    }
}

fn gen_err(e: rcgen::Error) -> TlsError {
    TlsError::Generation(e.to_string())
}

fn to_offset(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The CA's parameters. They are rebuilt identically when the CA is loaded, because an rcgen
/// issuer is its subject name, key identifier method and key usages plus its key.
fn ca_params(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "Paved");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = to_offset(not_before);
    params.not_after = to_offset(not_after);
    params
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    // Positive: the high bit of the first byte clear.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

impl InternalCa {
    /// Creates a new CA, valid for ten years.
    pub fn generate() -> Result<InternalCa, TlsError> {
        let now = Utc::now();
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = ca_params(
            now - chrono::Duration::hours(1),
            now + chrono::Duration::days(3650),
        );
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(gen_err)?;
        let key_pem = key.serialize_pem();
        Ok(InternalCa {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<InternalCa, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Stored(e.to_string()))?;
        let now = Utc::now();
        let params = ca_params(now, now);
        Ok(InternalCa {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (what clients trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Loads the CA from the database, creating and storing it on first use.
    pub async fn load_or_create<C: ConnectionTrait>(db: &C) -> Result<InternalCa, crate::Error> {
        let stored = certificate::Entity::find()
            .filter(certificate::Column::Kind.eq("ca"))
            .order_by_desc(certificate::Column::Id)
            .one(db)
            .await?;
        if let Some(row) = stored {
            return Ok(InternalCa::from_pem(&row.cert_pem, &row.key_pem)?);
        }
        let ca = InternalCa::generate()?;
        let now = Utc::now();
        certificate::ActiveModel {
            kind: Set("ca".into()),
            domain: Set(CA_NAME.into()),
            issuer: Set("self".into()),
            cert_pem: Set(ca.cert_pem.clone()),
            key_pem: Set(ca.key_pem.clone()),
            not_before: Set(now),
            not_after: Set(now + chrono::Duration::days(3650)),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
        tracing::info!("created the internal certificate authority");
        Ok(ca)
    }

    fn issue_now(&self, domain: &str, validity: Duration) -> Result<IssuedCertificate, TlsError> {
        let invalid = |reason: &str| TlsError::InvalidDomain {
            domain: domain.to_string(),
            reason: reason.to_string(),
        };
        if domain.is_empty() || domain.len() > 253 || domain.contains(char::is_whitespace) {
            return Err(invalid("expected a DNS name"));
        }
        let mut params = CertificateParams::new(vec![domain.to_string()])
            .map_err(|e| invalid(&e.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, domain.to_string());
        let now = Utc::now();
        let not_before = now - chrono::Duration::minutes(5);
        let not_after = now
            + chrono::Duration::from_std(validity).unwrap_or_else(|_| chrono::Duration::days(90));
        params.not_before = to_offset(not_before);
        params.not_after = to_offset(not_after);
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(IssuedCertificate {
            domain: domain.to_string(),
            cert_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
            not_before,
            not_after,
        })
    }
}

#[async_trait::async_trait]
impl CertificateIssuer for InternalCa {
    fn name(&self) -> &str {
        "internal-ca"
    }

    async fn issue(&self, domain: &str, validity: Duration) -> Result<IssuedCertificate, TlsError> {
        self.issue_now(domain, validity)
    }
}

/// Keeps one valid certificate per domain in the database.
#[derive(Clone)]
pub struct CertificateManager {
    issuer: Arc<dyn CertificateIssuer>,
    /// Signs `localhost` when `issuer` cannot (ACME).
    local: Option<Arc<InternalCa>>,
    validity: Duration,
    renew_before: Duration,
}

impl std::fmt::Debug for CertificateManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateManager")
            .field("issuer", &self.issuer.name())
            .field("validity", &self.validity)
            .field("renew_before", &self.renew_before)
            .finish()
    }
}

impl CertificateManager {
    /// A manager issuing with `issuer`.
    pub fn new(
        issuer: Arc<dyn CertificateIssuer>,
        validity: Duration,
        renew_before: Duration,
    ) -> CertificateManager {
        CertificateManager {
            issuer,
            local: None,
            validity,
            renew_before,
        }
    }

    /// A certificate for each domain: the newest stored one while it has more than
    /// `renew_before` left, otherwise a new one (stored through `db`, usually the transaction
    /// of the change that needs it). Returns the certificates and whether any was issued.
    pub async fn certificates_for<C: ConnectionTrait>(
        &self,
        db: &C,
        domains: &[String],
    ) -> Result<(Vec<IssuedCertificate>, bool), crate::Error> {
        let renew_at = self.renew_at();
        let mut out = Vec::with_capacity(domains.len());
        let mut issued_any = false;
        for domain in domains {
            if let Some(row) = valid_leaf(db, domain, renew_at).await? {
                out.push(row.into());
                continue;
            }
            let issuer: &dyn CertificateIssuer = match &self.local {
                Some(local) if domain == "localhost" => local.as_ref(),
                _ => self.issuer.as_ref(),
            };
            let cert = issuer.issue(domain, self.validity).await?;
            tracing::info!(domain = %domain, issuer = issuer.name(), not_after = %cert.not_after, "issued a certificate");
            certificate::ActiveModel {
                kind: Set("leaf".into()),
                domain: Set(domain.clone()),
                issuer: Set(issuer.name().to_string()),
                cert_pem: Set(cert.cert_pem.clone()),
                key_pem: Set(cert.key_pem.clone()),
                not_before: Set(cert.not_before),
                not_after: Set(cert.not_after),
                created_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(db)
            .await?;
            issued_any = true;
            out.push(cert);
        }
        Ok((out, issued_any))
    }

    /// The stored certificates of `domains` that are valid beyond the renewal margin, issuing
    /// nothing (for plans, and to tell whether a new snapshot is needed).
    pub async fn certificates_for_preview<C: ConnectionTrait>(
        &self,
        db: &C,
        domains: &[String],
    ) -> Result<Vec<IssuedCertificate>, crate::Error> {
        let renew_at = self.renew_at();
        let mut out = Vec::with_capacity(domains.len());
        for domain in domains {
            if let Some(row) = valid_leaf(db, domain, renew_at).await? {
                out.push(row.into());
            }
        }
        Ok(out)
    }

    /// Certificates that expire before this need renewing now.
    fn renew_at(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::from_std(self.renew_before)
                .unwrap_or_else(|_| chrono::Duration::days(30))
    }

    /// Whether any of `domains` lacks a certificate valid beyond the renewal margin.
    pub async fn needs_renewal<C: ConnectionTrait>(
        &self,
        db: &C,
        domains: &[String],
    ) -> Result<bool, crate::Error> {
        let renew_at = self.renew_at();
        for domain in domains {
            if valid_leaf(db, domain, renew_at).await?.is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The newest stored leaf certificate of `domain` valid beyond `renew_at`.
async fn valid_leaf<C: ConnectionTrait>(
    db: &C,
    domain: &str,
    renew_at: DateTime<Utc>,
) -> Result<Option<certificate::Model>, sea_orm::DbErr> {
    certificate::Entity::find()
        .filter(certificate::Column::Kind.eq("leaf"))
        .filter(certificate::Column::Domain.eq(domain))
        .filter(certificate::Column::NotAfter.gt(renew_at))
        .order_by_desc(certificate::Column::NotAfter)
        .one(db)
        .await
}

impl From<certificate::Model> for IssuedCertificate {
    fn from(row: certificate::Model) -> Self {
        Self {
            domain: row.domain,
            cert_pem: row.cert_pem,
            key_pem: row.key_pem,
            not_before: row.not_before,
            not_after: row.not_after,
        }
    }
}

/// The certificate manager that `settings` selects, with the internal CA's certificate when
/// the internal CA is the issuer (what `GET /v1/ca.pem` serves).
///
/// With ACME this contacts the directory (account created or loaded) and fails when it cannot:
/// the control plane does not start half-configured. `localhost` (the placeholder certificate
/// of a TLS listener before the first app) is still signed by the internal CA: no public CA
/// issues it.
pub async fn build_manager<C: ConnectionTrait>(
    db: &C,
    settings: &crate::config::CertificateSettings,
) -> Result<(CertificateManager, Option<String>), crate::Error> {
    use crate::config::{DnsProviderSettings, IssuerSettings};
    let ca = Arc::new(InternalCa::load_or_create(db).await?);
    match &settings.issuer {
        IssuerSettings::InternalCa => {
            let pem = ca.cert_pem().to_string();
            let manager = CertificateManager::new(ca, settings.validity, settings.renew_before);
            Ok((manager, Some(pem)))
        }
        IssuerSettings::Acme(acme) => {
            let dns: Arc<dyn DnsProvider> = match &acme.dns {
                DnsProviderSettings::Rfc2136(rfc2136) => Arc::new(Rfc2136Dns::new(rfc2136)?),
            };
            let issuer = AcmeIssuer::load_or_create(db, acme, dns).await?;
            let mut manager =
                CertificateManager::new(Arc::new(issuer), settings.validity, settings.renew_before);
            manager.local = Some(ca);
            Ok((manager, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ca_issues_chains_and_reloads() {
        let ca = InternalCa::generate().unwrap_or_else(|e| panic!("{e}"));
        let leaf = ca
            .issue_now("app.example.com", Duration::from_secs(86_400))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(leaf.cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        assert!(leaf.not_after > Utc::now());
        let again =
            InternalCa::from_pem(&ca.cert_pem, &ca.key_pem).unwrap_or_else(|e| panic!("{e}"));
        let wild = again
            .issue_now("*.preview.example.com", Duration::from_secs(86_400))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(wild.cert_pem.ends_with(ca.cert_pem()));
        assert!(again.issue_now("bad name", Duration::from_secs(1)).is_err());
    }
}
