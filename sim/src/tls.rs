//! A throw-away certificate authority for the simulators.
//!
//! Every simulator serves real HTTPS so that clients exercise the same TLS code path (rustls with
//! the `ring` provider) they use against Microsoft. At start a fresh CA and a server certificate
//! for `127.0.0.1` and `localhost` are generated in memory; nothing touches the disk. Clients trust
//! the CA through its PEM ([`TestCa::ca_pem`]), e.g. `reqwest::Certificate::from_pem` together with
//! `tls_built_in_root_certs(false)` so that nothing else is trusted by accident.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Names the server certificate is valid for.
const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A CA plus the rustls server configuration presenting a certificate it issued.
#[derive(Clone)]
pub struct TestCa {
    ca_pem: String,
    server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TestCa {
    // The server configuration holds a private key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// Generates a CA (ECDSA P-256) and a server certificate for 127.0.0.1 and localhost.
    pub fn generate() -> std::io::Result<TestCa> {
        let ca_key = KeyPair::generate().map_err(tls_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "connect-email-operator simulator CA");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_error)?;

        let server_key = KeyPair::generate().map_err(tls_error)?;
        let mut server_params = CertificateParams::new(SERVER_NAMES.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .map_err(tls_error)?;
        let mut server_name = DistinguishedName::new();
        server_name.push(DnType::CommonName, "localhost");
        server_params.distinguished_name = server_name;
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params.signed_by(&server_key, &ca).map_err(tls_error)?;

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(vec![server_cert.der().clone(), ca.der().clone()], key)
            .map_err(tls_error)?;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];

        Ok(TestCa { ca_pem: ca.pem(), server_config: Arc::new(server_config) })
    }

    /// PEM of the CA certificate (public; safe to log or write to a file).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The rustls configuration a simulator's listener uses.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config.clone()
    }
}

fn tls_error(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("generating the simulator's test certificates: {error}"))
}
