//! [`AcmeIssuer`]: a [`CertificateIssuer`] that obtains certificates from an ACME (RFC 8555)
//! directory with `instant-acme`, completing `dns-01` challenges through a [`DnsProvider`].
//!
//! One issuance: order → for each pending authorization, publish
//! `_acme-challenge.<domain>` TXT through the provider and mark the challenge ready → poll the
//! order until ready (backoff from 0.5 s, factor 1.5) → finalize with a CSR made by rcgen
//! (ECDSA P-256 key, made here, never sent) → download the chain. Everything up to the chain is
//! bounded by one overall timeout, and every HTTP request by its own; the TXT records published
//! are removed afterwards whatever happened.
//!
//! The account is created once per directory URL and its credentials (its URL and private key,
//! JSON) are kept in the `certificates` table (`kind = 'acme-account'`, `domain` = the
//! directory URL, the credentials in `key_pem`, like the internal CA's key), so a restart
//! reuses it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{AcmeStep, CertificateIssuer, DnsProvider, IssuedCertificate, TlsError};
use crate::config::AcmeSettings;
use crate::storage::entities::certificate;

/// `kind` of the row holding an ACME account's credentials.
const ACCOUNT_KIND: &str = "acme-account";
/// TTL of the challenge TXT records: short, they live for one validation.
const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// Largest CA bundle read (a bundle of a few hundred roots is ~250 KiB).
const MAX_CA_BUNDLE: u64 = 1024 * 1024;

/// Certificates from an ACME directory, `dns-01` challenges through a [`DnsProvider`].
pub struct AcmeIssuer {
    account: Account,
    dns: Arc<dyn DnsProvider>,
    directory_url: String,
    timeout: Duration,
}

impl std::fmt::Debug for AcmeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeIssuer")
            .field("directory_url", &self.directory_url)
            .field("account", &self.account.id())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn account_err(directory_url: &str, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Acme {
        domain: directory_url.to_string(),
        step: AcmeStep::Account,
        reason: reason.to_string(),
    }
}

/// Bounds every HTTP request to the directory (the underlying hyper client has no timeout).
struct TimeoutClient {
    inner: Box<dyn HttpClient>,
    timeout: Duration,
}

impl HttpClient for TimeoutClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.inner.request(req);
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, response)
                .await
                .unwrap_or(Err(instant_acme::Error::Str(
                    "no answer from the ACME server within the request timeout",
                )))
        })
    }
}

/// The HTTPS client: the platform's roots, or only those of `settings.ca_bundle`.
fn http_client(settings: &AcmeSettings) -> Result<Box<dyn HttpClient>, TlsError> {
    // ring, named explicitly: with several rustls providers compiled in, none is the default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let connector = match &settings.ca_bundle {
        None => hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| TlsError::Config(format!("ACME HTTPS client: {e}")))?,
        Some(path) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let unreadable =
                |e: &dyn std::fmt::Display| TlsError::Config(format!("CA bundle {path:?}: {e}"));
            let len = std::fs::metadata(path).map_err(|e| unreadable(&e))?.len();
            if len > MAX_CA_BUNDLE {
                return Err(unreadable(&format!("larger than {MAX_CA_BUNDLE} bytes")));
            }
            let pem = std::fs::read(path).map_err(|e| unreadable(&e))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| unreadable(&e))?;
                roots.add(cert).map_err(|e| unreadable(&e))?;
            }
            if roots.is_empty() {
                return Err(unreadable(&"no certificate in the file"));
            }
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| unreadable(&e))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
        }
    };
    let connector = connector.https_only().enable_http1().build();
    let inner: Box<dyn HttpClient> = Box::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, BodyWrapper<Bytes>>(connector),
    );
    Ok(Box::new(TimeoutClient {
        inner,
        timeout: settings.request_timeout,
    }))
}

impl AcmeIssuer {
    /// Loads the account of `settings.directory_url` from the database, or creates it at the
    /// directory and stores its credentials. Contacts the directory either way.
    pub async fn load_or_create<C: ConnectionTrait>(
        db: &C,
        settings: &AcmeSettings,
        dns: Arc<dyn DnsProvider>,
    ) -> Result<AcmeIssuer, crate::Error> {
        let url = settings.directory_url.as_str();
        if !url.starts_with("https://") {
            return Err(
                TlsError::Config(format!("ACME directory URL `{url}`: expected https://")).into(),
            );
        }
        let builder = || http_client(settings).map(Account::builder_with_http);
        let stored = certificate::Entity::find()
            .filter(certificate::Column::Kind.eq(ACCOUNT_KIND))
            .filter(certificate::Column::Domain.eq(url))
            .order_by_desc(certificate::Column::Id)
            .one(db)
            .await?;
        let account = if let Some(row) = stored {
            let credentials: AccountCredentials = serde_json::from_str(&row.key_pem)
                .map_err(|e| TlsError::Stored(format!("ACME account credentials: {e}")))?;
            let account =
                tokio::time::timeout(settings.timeout, builder()?.from_credentials(credentials))
                    .await
                    .map_err(|_| account_err(url, "timed out"))?
                    .map_err(|e| account_err(url, e))?;
            tracing::info!(
                directory = url,
                account = account.id(),
                "loaded the ACME account"
            );
            account
        } else {
            let contact = settings
                .contact_email
                .as_deref()
                .map(|email| format!("mailto:{email}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let (account, credentials) = tokio::time::timeout(
                settings.timeout,
                builder()?.create(
                    &NewAccount {
                        contact: &contacts,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    url.to_string(),
                    None,
                ),
            )
            .await
            .map_err(|_| account_err(url, "timed out"))?
            .map_err(|e| account_err(url, e))?;
            let json = serde_json::to_string(&credentials)
                .map_err(|e| account_err(url, format!("credentials do not serialize: {e}")))?;
            let now = Utc::now();
            certificate::ActiveModel {
                kind: Set(ACCOUNT_KIND.into()),
                domain: Set(url.to_string()),
                issuer: Set("acme".into()),
                cert_pem: Set(account.id().to_string()),
                key_pem: Set(json),
                not_before: Set(now),
                // The account does not expire; the column wants a date.
                not_after: Set(now + chrono::Duration::days(36_500)),
                created_at: Set(now),
                ..Default::default()
            }
            .insert(db)
            .await?;
            tracing::info!(
                directory = url,
                account = account.id(),
                "created an ACME account"
            );
            account
        };
        Ok(AcmeIssuer {
            account,
            dns,
            directory_url: url.to_string(),
            timeout: settings.timeout,
        })
    }

    /// The account's URL at the directory.
    pub fn account_id(&self) -> &str {
        self.account.id()
    }

    /// The order, up to the downloaded chain. `published` gets each TXT value before it is
    /// set, so that the caller removes it even when this future is cancelled mid-way.
    async fn order(
        &self,
        domain: &str,
        record: &str,
        published: &mut Vec<String>,
    ) -> Result<IssuedCertificate, TlsError> {
        let err = |step: AcmeStep, reason: &dyn std::fmt::Display| TlsError::Acme {
            domain: domain.to_string(),
            step,
            reason: reason.to_string(),
        };
        let identifiers = [Identifier::Dns(domain.to_string())];
        let mut order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| err(AcmeStep::Order, &e))?;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| err(AcmeStep::Authorization, &e))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(err(
                        AcmeStep::Authorization,
                        &format!("the authorization is {other:?}"),
                    ));
                }
            }
            let mut challenge = authz.challenge(ChallengeType::Dns01).ok_or_else(|| {
                err(
                    AcmeStep::Authorization,
                    &"the server offers no dns-01 challenge",
                )
            })?;
            let value = challenge.key_authorization().dns_value();
            published.push(value.clone());
            self.dns
                .set_txt(record, &value, CHALLENGE_TTL)
                .await
                .map_err(|e| err(AcmeStep::PublishChallenge, &e))?;
            challenge
                .set_ready()
                .await
                .map_err(|e| err(AcmeStep::ChallengeReady, &e))?;
        }
        let polling = RetryPolicy::new()
            .initial_delay(Duration::from_millis(500))
            .backoff(1.5)
            .timeout(self.timeout);
        let status = order
            .poll_ready(&polling)
            .await
            .map_err(|e| err(AcmeStep::Validation, &e))?;
        if status != OrderStatus::Ready {
            // Say why: the challenges' errors (the server could not see the TXT record, ...).
            let mut problems = Vec::new();
            let mut authorizations = order.authorizations();
            while let Some(Ok(mut authz)) = authorizations.next().await {
                if authz.refresh().await.is_ok() {
                    for challenge in &authz.challenges {
                        if let Some(problem) = &challenge.error {
                            problems.push(problem.to_string());
                        }
                    }
                }
            }
            return Err(err(
                AcmeStep::Validation,
                &format!("the order is {status:?}: {}", problems.join("; ")),
            ));
        }
        let key = KeyPair::generate().map_err(|e| err(AcmeStep::Finalize, &e))?;
        let mut params = CertificateParams::new(vec![domain.to_string()])
            .map_err(|e| err(AcmeStep::Finalize, &e))?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| err(AcmeStep::Finalize, &e))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| err(AcmeStep::Finalize, &e))?;
        let chain = order
            .poll_certificate(&polling)
            .await
            .map_err(|e| err(AcmeStep::Download, &e))?;
        let (not_before, not_after) =
            leaf_validity(&chain, domain).map_err(|e| err(AcmeStep::Download, &e))?;
        Ok(IssuedCertificate {
            domain: domain.to_string(),
            cert_pem: chain,
            key_pem: key.serialize_pem(),
            not_before,
            not_after,
        })
    }
}

/// The validity of the chain's first certificate, which must name `domain`.
fn leaf_validity(chain: &str, domain: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    use x509_parser::extensions::GeneralName;
    let pem = x509_parser::pem::Pem::iter_from_buffer(chain.as_bytes())
        .next()
        .ok_or("the chain has no certificate")?
        .map_err(|e| format!("the chain does not parse: {e}"))?;
    let leaf = pem
        .parse_x509()
        .map_err(|e| format!("the leaf does not parse: {e}"))?;
    let names = leaf
        .subject_alternative_name()
        .map_err(|e| format!("the leaf's SAN does not parse: {e}"))?;
    let covered = names.is_some_and(|san| {
        san.value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(domain)))
    });
    if !covered {
        return Err(format!("the leaf does not name `{domain}`"));
    }
    let at = |t: x509_parser::time::ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0).ok_or("validity out of range")
    };
    Ok((
        at(leaf.validity().not_before)?,
        at(leaf.validity().not_after)?,
    ))
}

#[async_trait::async_trait]
impl CertificateIssuer for AcmeIssuer {
    fn name(&self) -> &str {
        "acme"
    }

    /// Issues through the directory; `validity` is the CA's choice under ACME and is ignored.
    async fn issue(
        &self,
        domain: &str,
        _validity: Duration,
    ) -> Result<IssuedCertificate, TlsError> {
        if domain.is_empty() || domain.len() > 253 || domain.contains(char::is_whitespace) {
            return Err(TlsError::InvalidDomain {
                domain: domain.to_string(),
                reason: "expected a DNS name".into(),
            });
        }
        // A wildcard's challenge lives at its base name (RFC 8555, section 8.4).
        let base = domain.strip_prefix("*.").unwrap_or(domain);
        let record = format!("_acme-challenge.{base}");
        let mut published = Vec::new();
        let outcome =
            tokio::time::timeout(self.timeout, self.order(domain, &record, &mut published)).await;
        for value in &published {
            if let Err(e) = self.dns.remove_txt(&record, value).await {
                let e = TlsError::Acme {
                    domain: domain.to_string(),
                    step: AcmeStep::RemoveChallenge,
                    reason: e.to_string(),
                };
                tracing::warn!(domain, record = %record, error = %e, "a dns-01 TXT record stays");
            }
        }
        match outcome {
            Ok(Ok(cert)) => {
                tracing::info!(domain, directory = %self.directory_url, not_after = %cert.not_after, "ACME certificate issued");
                Ok(cert)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TlsError::Acme {
                domain: domain.to_string(),
                step: AcmeStep::Timeout,
                reason: format!("no certificate within {:?}", self.timeout),
            }),
        }
    }
}
