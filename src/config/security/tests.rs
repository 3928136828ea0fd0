//! Tests of [`Security`]: names, the environment, validation, hidden passwords.

use super::*;

fn sasl() -> Sasl {
    Sasl::new(SaslMechanism::ScramSha256, "alice", "alice-secret")
}

fn check(protocol: SecurityProtocol, tls: Option<TlsConfig>, sasl: Option<Sasl>) -> String {
    let s = Security {
        protocol,
        tls,
        sasl,
    };
    match s.validate() {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn names_parse_in_any_case_and_print_as_kafka_spells_them() {
    assert_eq!(
        SecurityProtocol::from_name("sasl_ssl"),
        Some(SecurityProtocol::SaslSsl)
    );
    assert_eq!(SecurityProtocol::from_name("TLS"), None);
    assert_eq!(
        SecurityProtocol::SaslPlaintext.to_string(),
        "SASL_PLAINTEXT"
    );
    assert_eq!(
        SaslMechanism::from_name("scram-sha-512"),
        Some(SaslMechanism::ScramSha512)
    );
    assert_eq!(SaslMechanism::ScramSha256.to_string(), "SCRAM-SHA-256");
    assert_eq!(SaslMechanism::from_name("GSSAPI"), None);
}

#[test]
fn debug_hides_the_password() {
    let text = format!("{:?}", sasl());
    assert!(text.contains("alice"), "{text}");
    assert!(!text.contains("alice-secret"), "{text}");
}

fn from_env(vars: &[(&str, &str)]) -> Result<Security> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Security::from_lookup(&|k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

#[test]
fn the_environment_fills_the_section() {
    assert_eq!(from_env(&[]).unwrap(), Security::default());
    let s = from_env(&[
        ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("KAFKA_SASL_USERNAME", "alice"),
        ("KAFKA_SASL_PASSWORD", "alice-secret"),
        ("KAFKA_TLS_CA", "/tmp/ca.pem"),
    ])
    .unwrap();
    assert_eq!(s.protocol, SecurityProtocol::SaslSsl);
    assert_eq!(
        s.sasl,
        Some(Sasl::new(
            SaslMechanism::ScramSha512,
            "alice",
            "alice-secret"
        ))
    );
    assert_eq!(s.tls, Some(TlsConfig::with_ca("/tmp/ca.pem")));
    let e = from_env(&[("KAFKA_SECURITY_PROTOCOL", "TLS")]).unwrap_err();
    assert!(e.to_string().contains("KAFKA_SECURITY_PROTOCOL"), "{e}");
    let e = from_env(&[("KAFKA_SASL_USERNAME", "alice")]).unwrap_err();
    assert!(
        e.to_string().contains("KAFKA_SASL_MECHANISM") && e.to_string().contains("not set"),
        "{e}"
    );
    let e = from_env(&[("KAFKA_SASL_MECHANISM", "GSSAPI")]).unwrap_err();
    assert!(e.to_string().contains("GSSAPI"), "{e}");
}

#[test]
fn plaintext_is_the_valid_default() {
    assert_eq!(Security::default().protocol, SecurityProtocol::Plaintext);
    assert_eq!(check(SecurityProtocol::Plaintext, None, None), "ok");
}

#[test]
fn sasl_credentials_must_match_the_protocol() {
    let e = check(SecurityProtocol::Plaintext, None, Some(sasl()));
    assert!(
        e.contains("`security.sasl`") && e.contains("SASL_PLAINTEXT"),
        "{e}"
    );
    assert!(!e.contains("alice-secret"), "{e}");
    if cfg!(feature = "sasl") {
        let e = check(SecurityProtocol::SaslPlaintext, None, None);
        assert!(
            e.contains("`security.sasl`") && e.contains("needs SASL"),
            "{e}"
        );
        let mut s = sasl();
        s.password.clear();
        let e = check(SecurityProtocol::SaslPlaintext, None, Some(s));
        assert!(e.contains("`security.sasl.password`"), "{e}");
        let mut s = sasl();
        s.username.clear();
        let e = check(SecurityProtocol::SaslPlaintext, None, Some(s));
        assert!(e.contains("`security.sasl.username`"), "{e}");
        assert_eq!(
            check(SecurityProtocol::SaslPlaintext, None, Some(sasl())),
            "ok"
        );
    }
}

#[test]
fn tls_settings_must_match_the_protocol() {
    let tls = TlsConfig::with_ca("ca.pem");
    let e = check(SecurityProtocol::Plaintext, Some(tls.clone()), None);
    assert!(e.contains("`security.tls`") && e.contains("SSL"), "{e}");
    if cfg!(feature = "tls") {
        assert_eq!(check(SecurityProtocol::Ssl, Some(tls), None), "ok");
        assert_eq!(check(SecurityProtocol::Ssl, None, None), "ok");
        let e = check(SecurityProtocol::Ssl, Some(TlsConfig::with_ca("")), None);
        assert!(e.contains("`security.tls.ca_pem_path`"), "{e}");
        let bad_name = TlsConfig {
            server_name: Some("a b".into()),
            ..TlsConfig::default()
        };
        let e = check(SecurityProtocol::Ssl, Some(bad_name), None);
        assert!(e.contains("`security.tls.server_name`"), "{e}");
    }
}

#[test]
fn a_protocol_needing_a_feature_not_compiled_in_says_which() {
    let e = check(SecurityProtocol::Ssl, None, None);
    if cfg!(feature = "tls") {
        assert_eq!(e, "ok");
    } else {
        assert!(
            e.contains("`security.protocol`") && e.contains("`tls` feature"),
            "{e}"
        );
    }
    let e = check(SecurityProtocol::SaslPlaintext, None, Some(sasl()));
    if cfg!(feature = "sasl") {
        assert_eq!(e, "ok");
    } else {
        assert!(e.contains("`sasl` feature"), "{e}");
    }
}
