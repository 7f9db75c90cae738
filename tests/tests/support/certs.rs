//! A test CA, a certificate for `localhost` it signed and a client
//! certificate it signed, made at run time by rcgen and written as PEM
//! files: for the TLS tests against em's own
//! clients and servers and against outside programs (openssl, curl,
//! Python).

use std::path::PathBuf;

use em::TlsOptions;

/// A CA, and a certificate for "localhost" it signed, as PEM files in a
/// fresh directory (removed on drop).
pub struct Certs {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA's certificate (what a client trusts).
    pub ca: PathBuf,
    /// The server's certificate, signed by the CA.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// A client certificate (common name `em test client`), signed by the
    /// CA: for servers that ask for one.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
}

impl Certs {
    /// Makes them in a fresh directory named after `name`, removed on drop.
    pub fn new(name: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("em-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "em interop CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &rcgen::Issuer::new(ca_params.clone(), &ca_key))
            .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "em test client");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &rcgen::Issuer::new(ca_params, &ca_key))
            .unwrap();
        let c = Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_cert: dir.join("client-cert.pem"),
            client_key: dir.join("client-key.pem"),
            dir,
        };
        std::fs::write(&c.ca, ca.pem()).unwrap();
        std::fs::write(&c.cert, cert.pem()).unwrap();
        std::fs::write(&c.key, key.serialize_pem()).unwrap();
        std::fs::write(&c.client_cert, client.pem()).unwrap();
        std::fs::write(&c.client_key, client_key.serialize_pem()).unwrap();
        c
    }

    /// em's server options with this certificate and key.
    pub fn server_options(&self) -> TlsOptions {
        TlsOptions::new()
            .cert_chain_file(&self.cert)
            .private_key_file(&self.key)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
