//! The TLS client configuration of one registry host, and the diagnosis
//! of a connection that closed without saying why.
//!
//! We build the rustls configuration here and hand it to reqwest (rather
//! than let reqwest build it from its options) so that the same
//! configuration can run a second, plain handshake when a request fails
//! in a way hyper cannot name. The case that needs it: in TLS 1.3 the
//! client's side of the handshake is finished before the server has read
//! its certificate, so a registry that requires a client certificate we
//! did not send (or rejects the one we sent) answers with an alert only
//! after the handshake. hyper's connection task reads that alert and
//! closes; a request queued on the connection then fails with just
//! "connection was not ready", and the alert is lost. Whether the request
//! or the alert wins is a race, so the same mistake would read as either
//! "TLS failed" or "cannot reach registry". [`diagnose`] settles it: it
//! writes a request on its own connection and reads, and rustls reports
//! the alert on that read.

use super::Error;
use reqwest::Url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How long the diagnosis may take to connect, and then to hear back.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a registry host's TLS needs: extra trusted CAs (PEM), a client
/// certificate and key (PEM), or no verification at all.
pub struct Options<'a> {
    pub extra_roots: &'a [Vec<u8>],
    pub client_identity: Option<&'a [u8]>,
    pub skip_verify: bool,
}

/// The rustls configuration for `options`: the system's roots plus the
/// extra ones (as reqwest's own default, the platform verifier), HTTP/1.1
/// by ALPN, and the client certificate if there is one.
pub fn client_config(options: &Options) -> Result<Arc<ClientConfig>, Error> {
    let tls = |what: &str, e: &dyn std::fmt::Display| Error::Tls {
        detail: format!("{what}: {e}"),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("setting up TLS", &e))?
        .dangerous();
    let builder = if options.skip_verify {
        builder.with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let mut roots = Vec::new();
        for pem in options.extra_roots {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.push(cert.map_err(|e| tls("a trusted CA", &e))?);
            }
        }
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider)
            .map_err(|e| tls("the system's trusted CAs", &e))?;
        builder.with_custom_certificate_verifier(Arc::new(verifier))
    };
    let mut config = match options.client_identity {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let what = "the client certificate and key";
            let chain = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls(what, &e))?;
            if chain.is_empty() {
                return Err(tls(what, &"no CERTIFICATE block"));
            }
            let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| tls(what, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls(what, &e))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Why TLS with `url`'s host fails, if it does: one connection with
/// `config`, a request written, an answer read. `None` when the server
/// answers (the earlier failure was something else), cannot be reached,
/// or is reached through a proxy (the probe would go elsewhere).
pub async fn diagnose(config: Arc<ClientConfig>, url: &Url) -> Option<String> {
    if proxied() {
        return None;
    }
    let host = url.host_str()?.trim_matches(['[', ']']).to_string();
    let port = url.port_or_known_default()?;
    let authority = url.authority().to_string();
    tokio::task::spawn_blocking(move || probe(config, &host, port, &authority))
        .await
        .ok()
        .flatten()
}

/// Whether reqwest may send requests through a proxy (it reads these).
fn proxied() -> bool {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty()))
}

fn probe(config: Arc<ClientConfig>, host: &str, port: u16, authority: &str) -> Option<String> {
    // The first address that takes a connection, as a client tries them.
    let tcp = (host, port)
        .to_socket_addrs()
        .ok()?
        .find_map(|a| TcpStream::connect_timeout(&a, PROBE_TIMEOUT).ok())?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    tcp.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    let name = ServerName::try_from(host.to_string()).ok()?;
    let connection = rustls::ClientConnection::new(config, name).ok()?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let mut first = [0u8; 1];
    let failure = match stream.write_all(request.as_bytes()) {
        Err(e) => e,
        Ok(()) => match stream.read(&mut first) {
            Ok(_) => return None,
            Err(e) => e,
        },
    };
    // Only rustls's own errors (an alert, a certificate we refused) are a
    // diagnosis; a reset or a timeout says nothing new.
    let tls = failure.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(tls.to_string())
}

/// certs.d `skip_verify`: any certificate for any name. Signatures are
/// still checked, so the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer,
        _intermediates: &[CertificateDer],
        _server_name: &ServerName,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::server::WebPkiClientVerifier;
    use std::net::TcpListener;

    /// A CA that signs certificates for the tests.
    struct TestCa {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl TestCa {
        fn new() -> TestCa {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().unwrap();
            let pem = params.self_signed(&key).unwrap().pem();
            TestCa {
                pem,
                issuer: Issuer::new(params, key),
            }
        }

        /// A certificate for `name`, and its key.
        fn issue(&self, name: &str) -> (rcgen::Certificate, KeyPair) {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .signed_by(&key, &self.issuer)
                .unwrap();
            (cert, key)
        }
    }

    /// A TLS server on 127.0.0.1 that wants a client certificate of `ca`'s
    /// and answers each request it gets with 200; its port.
    fn mutual_tls_server(ca: &TestCa) -> u16 {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
            .unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let (cert, key) = ca.issue("127.0.0.1");
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Ends with the test process.
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let connection = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut stream = rustls::StreamOwned::new(connection, tcp);
                let mut request = [0u8; 512];
                if stream.read(&mut request).is_ok() {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    let _ = stream.flush();
                }
            }
        });
        port
    }

    #[test]
    fn the_probe_names_a_refused_client_certificate_and_passes_a_good_one() {
        let ca = TestCa::new();
        let port = mutual_tls_server(&ca);
        let authority = format!("127.0.0.1:{port}");
        let roots = [ca.pem.clone().into_bytes()];
        let options = |identity| Options {
            extra_roots: &roots,
            client_identity: identity,
            skip_verify: false,
        };
        // TLS 1.3: the server's alert comes after our side of the
        // handshake; the probe's read is where it shows.
        let without = client_config(&options(None)).unwrap();
        let why = probe(without, "127.0.0.1", port, &authority).expect("a TLS failure");
        assert!(why.contains("CertificateRequired"), "{why}");

        let (cert, key) = ca.issue("hull-client");
        let identity = format!("{}{}", cert.pem(), key.serialize_pem());
        let with = client_config(&options(Some(identity.as_bytes()))).unwrap();
        assert_eq!(probe(with, "127.0.0.1", port, &authority), None);
    }

    #[test]
    fn bad_pem_is_a_tls_error_naming_what() {
        let err = client_config(&Options {
            extra_roots: &[],
            client_identity: Some(
                b"-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n",
            ),
            skip_verify: false,
        })
        .expect_err("no certificate in the identity")
        .to_string();
        assert!(err.contains("the client certificate and key"), "{err}");
    }
}
