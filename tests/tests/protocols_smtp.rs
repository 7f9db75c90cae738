//! SMTP (em-protocols): the server against Python's smtplib (a client
//! nobody here wrote), plain, with AUTH and with STARTTLS; em's client
//! against em's server (per-recipient results, AUTH, STARTTLS required
//! and opportunistic, refusals, the size limit), against scripted servers
//! (HELO fallback, timeouts, garbage), and against Python's aiosmtpd
//! where it is installed; the server's replies to bad sequences, unknown
//! commands and pipelined batches, read by a raw line client.

mod support;

use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use em::prelude::*;
use em::TlsOptions;
use em_protocols::{
    SmtpAnswer, SmtpAuth, SmtpClient, SmtpError, SmtpHandler, SmtpMessage, SmtpReply, SmtpServer,
    SmtpServerOptions, SmtpSession, StartTls,
};
use support::{join_peer, refusing_addr, run_with_watchdog, spawn_peer, LineClient, TempDir};

// ---- A recording handler. ----

/// What the servers of one test saw: hook events in order, and messages.
#[derive(Clone, Default)]
struct Seen {
    events: Rc<RefCell<Vec<String>>>,
    messages: Rc<RefCell<Vec<SmtpMessage>>>,
}

impl Seen {
    fn push(&self, event: String) {
        self.events.borrow_mut().push(event);
    }
    fn events(&self) -> Vec<String> {
        self.events.borrow().clone()
    }
    fn messages(&self) -> Vec<SmtpMessage> {
        self.messages.borrow().clone()
    }
}

/// Accepts everything but `spammer@…` senders, `nobody@…` recipients
/// and messages that say `REFUSE ME`; lets `alice` in with `s3cret`.
/// Recipients `slow@…` are answered 10 ms later (an `SmtpAnswer::later`),
/// `early@…` through a responder before the hook returns (with a `251`),
/// and for `drop@…` the responder is dropped unanswered.
struct Recorder {
    seen: Seen,
}

impl SmtpHandler for Recorder {
    fn receive_ehlo_domain(&mut self, s: &SmtpSession<'_>, domain: &str) -> SmtpAnswer {
        self.seen.push(format!(
            "{} {domain}",
            if s.is_extended() { "ehlo" } else { "helo" }
        ));
        SmtpAnswer::accept()
    }

    fn receive_plain_auth(
        &mut self,
        _: &SmtpSession<'_>,
        user: &str,
        password: &str,
    ) -> SmtpAnswer {
        self.seen.push(format!("auth {user} {password}"));
        (user == "alice" && password == "s3cret").into()
    }

    fn receive_sender(&mut self, _: &SmtpSession<'_>, sender: &str) -> SmtpAnswer {
        self.seen.push(format!("sender {sender}"));
        (!sender.starts_with("spammer@")).into()
    }

    fn receive_recipient(&mut self, _: &SmtpSession<'_>, rcpt: &str) -> SmtpAnswer {
        self.seen.push(format!("recipient {rcpt}"));
        if rcpt.starts_with("slow@") {
            let (answer, responder) = SmtpAnswer::later();
            em::add_timer(Duration::from_millis(10), move || responder.accept()).expect("a timer");
            return answer;
        }
        if rcpt.starts_with("early@") {
            // Answered before the hook returns: nothing waits.
            let (answer, responder) = SmtpAnswer::later();
            responder.reply(SmtpReply::new(251, "2.1.5 User not local; will forward"));
            return answer;
        }
        if rcpt.starts_with("drop@") {
            let (answer, responder) = SmtpAnswer::later();
            em::next_tick(move || drop(responder));
            return answer;
        }
        (!rcpt.starts_with("nobody@")).into()
    }

    fn receive_message(&mut self, s: &SmtpSession<'_>, message: SmtpMessage) -> SmtpAnswer {
        self.seen.push(format!(
            "message tls={} user={:?}",
            s.is_tls(),
            s.authenticated_user()
        ));
        let refuse = String::from_utf8_lossy(&message.data).contains("REFUSE ME");
        self.seen.messages.borrow_mut().push(message);
        (!refuse).into()
    }

    fn receive_reset(&mut self, _: &SmtpSession<'_>) {
        self.seen.push("reset".into());
    }
}

/// Starts a recording SMTP server with `options` on 127.0.0.1, port 0.
fn start(options: &SmtpServerOptions, seen: &Seen) -> em::Server {
    let (options, seen) = (options.clone(), seen.clone());
    em::start_server("127.0.0.1:0", move || {
        SmtpServer::new_with_options(Recorder { seen: seen.clone() }, &options)
    })
    .expect("start the SMTP server")
}

/// Runs `test` on a reactor (bounded by the watchdog) and returns what it
/// returns; the reactor stops when it is done.
fn run_async<T: 'static, F: Future<Output = T> + 'static>(test: impl FnOnce() -> F + 'static) -> T {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let fut = test();
        em::spawn(async move {
            *o.borrow_mut() = Some(fut.await);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    let v = out.borrow_mut().take().expect("the test ran to its end");
    v
}

/// Runs a recording server with `options` and, on a thread of its own,
/// `peer` with the server's port; returns what `peer` returns. The
/// reactor stops when `peer` ends.
fn with_peer<T: Send + 'static>(
    options: SmtpServerOptions,
    seen: &Seen,
    peer: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let seen = seen.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = start(&options, &seen);
        let port = server.local_addr().inet().expect("TCP").port();
        spawn_peer(em::handle()?, tx, move || peer(port));
        Ok(())
    })
    .unwrap();
    join_peer(&rx)
}

/// Runs `python3 -c script args…`; its stdout and stderr, and panics if
/// it failed.
fn python(script: &str, args: &[String]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python3 failed: {text}");
    text
}

/// A CA and a certificate it signed for `localhost` and `127.0.0.1`.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "em SMTP test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params
        .signed_by(&key, &rcgen::Issuer::new(ca_params, ca_key))
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl Pki {
    fn server(&self) -> TlsOptions {
        TlsOptions::new()
            .cert_chain_pem(self.cert_pem.clone())
            .private_key_pem(self.key_pem.clone())
    }
    fn client(&self) -> TlsOptions {
        TlsOptions::new()
            .root_certs_pem(self.ca_pem.clone())
            .server_name("localhost")
    }
}

// ---- The server, against Python's smtplib. ----

#[test]
fn python_smtplib_delivers_a_dot_stuffed_message_with_one_recipient_refused() {
    let script = r#"
import smtplib, sys
msg = ("From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
       "first line\r\n.leading dot\r\n..two dots\r\n.\r\nlast\r\n")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.example", timeout=10) as s:
    code, _ = s.ehlo()
    print("ehlo", code, sorted(s.esmtp_features))
    refused = s.sendmail("a@example.org",
                         ["b@example.org", "nobody@example.org", "c@example.org"], msg)
    print("refused", {k: (v[0], v[1].decode()) for k, v in refused.items()})
"#;
    let seen = Seen::default();
    let out = with_peer(SmtpServerOptions::new(), &seen, move |port| {
        python(script, &[port.to_string()])
    });
    assert!(
        out.contains("ehlo 250 ['8bitmime', 'enhancedstatuscodes', 'help', 'pipelining', 'size']"),
        "{out}"
    );
    assert!(
        out.contains("refused {'nobody@example.org': (550, '5.1.1 Recipient refused')}"),
        "{out}"
    );
    assert_eq!(
        seen.events(),
        [
            "ehlo client.example",
            "sender a@example.org",
            "recipient b@example.org",
            "recipient nobody@example.org",
            "recipient c@example.org",
            "message tls=false user=None",
        ]
    );
    let messages = seen.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].sender, "a@example.org");
    assert_eq!(messages[0].recipients, ["b@example.org", "c@example.org"]);
    assert_eq!(
        std::str::from_utf8(&messages[0].data).unwrap(),
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n\
         first line\r\n.leading dot\r\n..two dots\r\n.\r\nlast\r\n"
    );
}

#[test]
fn python_smtplib_authenticates_with_plain_and_login() {
    let script = r#"
import smtplib, sys
port = int(sys.argv[1])
def session(name, f):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example")
        s.user, s.password = "alice", "s3cret"
        try:
            code, text = f(s)
            print(name, code, text.decode() if isinstance(text, bytes) else text)
        except smtplib.SMTPAuthenticationError as e:
            print(name, "refused", e.smtp_code, e.smtp_error.decode())
        except smtplib.SMTPSenderRefused as e:
            print(name, "sender refused", e.smtp_code, e.smtp_error.decode())
session("offers", lambda s: (0, s.esmtp_features["auth"].strip()))
session("login()", lambda s: s.login("alice", "s3cret"))
session("plain-334", lambda s: s.auth("PLAIN", s.auth_plain, initial_response_ok=False))
session("login-initial", lambda s: s.auth("LOGIN", s.auth_login))
session("login-334", lambda s: s.auth("LOGIN", s.auth_login, initial_response_ok=False))
session("wrong", lambda s: s.login("alice", "wrong"))
session("unauthenticated", lambda s: (0, s.sendmail("a@example.org", ["b@example.org"], "x\r\n")))
def then_mail(s):
    s.login("alice", "s3cret")
    return 0, s.sendmail("alice@example.org", ["b@example.org"], "Subject: a\r\n\r\nauthenticated\r\n")
session("mail", then_mail)
"#;
    let seen = Seen::default();
    let options = SmtpServerOptions::new().auth(true).require_auth(true);
    let out = with_peer(options, &seen, move |port| {
        python(script, &[port.to_string()])
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "offers 0 PLAIN LOGIN",
            "login() 235 2.7.0 Authentication successful",
            "plain-334 235 2.7.0 Authentication successful",
            "login-initial 235 2.7.0 Authentication successful",
            "login-334 235 2.7.0 Authentication successful",
            "wrong refused 535 5.7.8 Authentication credentials invalid",
            "unauthenticated sender refused 530 5.7.0 Authentication required",
            "mail 0 {}",
        ],
        "{out}"
    );
    let events = seen.events();
    assert_eq!(
        events.iter().filter(|e| *e == "auth alice s3cret").count(),
        5
    );
    // smtplib's login() tries PLAIN, then LOGIN, with the wrong password.
    assert_eq!(
        events.iter().filter(|e| *e == "auth alice wrong").count(),
        2
    );
    assert_eq!(
        events.last().unwrap(),
        "message tls=false user=Some(\"alice\")"
    );
    assert_eq!(seen.messages()[0].sender, "alice@example.org");
}

#[test]
fn python_smtplib_upgrades_with_starttls_to_a_fresh_session() {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as s:
    s.ehlo("client.example")
    print("offers starttls", s.has_extn("starttls"))
    print("starttls", s.starttls(context=ctx)[0], s.sock.version())
    # RFC 3207: the server forgot the EHLO.
    print("mail before ehlo", s.docmd("MAIL", "FROM:<a@example.org>")[0])
    s.ehlo("client.example")
    print("offers starttls after", s.has_extn("starttls"))
    print("starttls again", s.docmd("STARTTLS")[0])
    print("refused", s.sendmail("a@example.org", ["b@example.org"], "Subject: tls\r\n\r\nsecret\r\n"))
"#;
    let pki = pki();
    let dir = TempDir::new("smtp-tls");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let seen = Seen::default();
    let options = SmtpServerOptions::new().tls(pki.server());
    let out = with_peer(options, &seen, move |port| {
        python(script, &[port.to_string(), ca])
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "offers starttls True",
            "starttls 220 TLSv1.3",
            "mail before ehlo 503",
            "offers starttls after False",
            "starttls again 503",
            "refused {}",
        ],
        "{out}"
    );
    assert_eq!(
        seen.events(),
        [
            "ehlo client.example",
            "ehlo client.example",
            "sender a@example.org",
            "recipient b@example.org",
            "message tls=true user=None",
        ]
    );
    assert_eq!(
        &seen.messages()[0].data[..],
        b"Subject: tls\r\n\r\nsecret\r\n"
    );
}

// ---- em's client against em's server. ----

const TO: [&str; 3] = ["b@example.org", "nobody@example.org", "c@example.org"];

#[test]
fn client_delivers_with_a_result_per_recipient_pipelined_or_not() {
    for pipelining in [true, false] {
        let seen = Seen::default();
        let s = seen.clone();
        let result = run_async(move || async move {
            let server = start(&SmtpServerOptions::new(), &s);
            SmtpClient::new(server.local_addr())
                .domain("client.example")
                .pipelining(pipelining)
                .send_mail("a@example.org", TO, "Subject: hi\n\n.dot\n..\nlast")
                .await
        });
        let delivery = result.unwrap();
        assert_eq!(
            delivery.accepted().collect::<Vec<_>>(),
            ["b@example.org", "c@example.org"]
        );
        let refused: Vec<_> = delivery
            .refused()
            .map(|r| (r.address.as_str(), r.reply.code(), r.reply.text()))
            .collect();
        assert_eq!(
            refused,
            [("nobody@example.org", 550, "5.1.1 Recipient refused")]
        );
        assert_eq!(delivery.reply.to_string(), "250 2.0.0 Message accepted");
        let messages = seen.messages();
        assert_eq!(messages[0].sender, "a@example.org");
        assert_eq!(messages[0].recipients, ["b@example.org", "c@example.org"]);
        assert_eq!(
            &messages[0].data[..],
            b"Subject: hi\r\n\r\n.dot\r\n..\r\nlast\r\n",
            "pipelining {pipelining}"
        );
    }
}

#[test]
fn client_callback_form_runs_callbacks_and_errbacks() {
    let seen = Seen::default();
    let s = seen.clone();
    let mut log = run_async(move || async move {
        let server = start(&SmtpServerOptions::new(), &s);
        let client = SmtpClient::new(server.local_addr());
        let log = Rc::new(RefCell::new(Vec::new()));
        let ok = client.send("a@example.org", ["b@example.org"], "hello\r\n");
        let (l1, l2) = (log.clone(), log.clone());
        ok.callback(move |d| l1.borrow_mut().push(format!("callback {}", d.reply.code())));
        ok.errback(move |e| l2.borrow_mut().push(format!("errback {e}")));
        let bad = client.send("spammer@example.org", ["b@example.org"], "hello\r\n");
        let (l3, l4) = (log.clone(), log.clone());
        bad.callback(move |d| l3.borrow_mut().push(format!("callback {}", d.reply.code())));
        bad.errback(move |e| l4.borrow_mut().push(format!("errback {e}")));
        let invalid = client.send("a@example.org", ["b@example.org\r\nDATA"], "x");
        assert!(invalid.is_failed(), "refused before connecting");
        let _ = ok.await;
        let _ = bad.await;
        let v = log.borrow().clone();
        v
    });
    log.sort();
    assert_eq!(
        log,
        [
            "callback 250",
            "errback SMTP: the server refused the sender <spammer@example.org>: 550 5.7.1 Sender refused",
        ]
    );
}

#[test]
fn client_authenticates_with_plain_login_or_auto_and_reports_failures() {
    let seen = Seen::default();
    let s = seen.clone();
    let results = run_async(move || async move {
        let with_auth = start(&SmtpServerOptions::new().auth(true).require_auth(true), &s);
        let without = start(&SmtpServerOptions::new(), &s);
        let mut results = Vec::new();
        for auth in [
            Some(SmtpAuth::plain("alice", "s3cret")),
            Some(SmtpAuth::login("alice", "s3cret")),
            Some(SmtpAuth::new("alice", "s3cret")),
            Some(SmtpAuth::login("alice", "wrong")),
            None,
        ] {
            let mut client = SmtpClient::new(with_auth.local_addr());
            if let Some(auth) = auth {
                client = client.auth(auth);
            }
            results.push(
                client
                    .send_mail("a@example.org", ["b@example.org"], "x")
                    .await,
            );
        }
        results.push(
            SmtpClient::new(without.local_addr())
                .auth(SmtpAuth::new("alice", "s3cret"))
                .send_mail("a@example.org", ["b@example.org"], "x")
                .await,
        );
        results
    });
    for ok in &results[..3] {
        assert_eq!(ok.as_ref().unwrap().reply.code(), 250);
    }
    let wrong = results[3].as_ref().unwrap_err();
    assert!(wrong.is_auth(), "{wrong:?}");
    assert_eq!(wrong.reply().unwrap().code(), 535);
    assert_eq!(
        wrong.to_string(),
        "SMTP: authentication as \"alice\" failed: 535 5.7.8 Authentication credentials invalid"
    );
    let anonymous = results[4].as_ref().unwrap_err();
    assert!(anonymous.is_sender_refused(), "{anonymous:?}");
    assert_eq!(anonymous.reply().unwrap().code(), 530);
    let unoffered = results[5].as_ref().unwrap_err();
    assert!(unoffered.is_auth(), "{unoffered:?}");
    assert_eq!(
        unoffered.to_string(),
        "SMTP: cannot authenticate with AUTH PLAIN or LOGIN: the server offers no AUTH"
    );
    let events = seen.events();
    assert_eq!(
        events.iter().filter(|e| *e == "auth alice s3cret").count(),
        3
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "message tls=false user=Some(\"alice\")")
            .count(),
        3
    );
}

#[test]
fn client_starttls_required_and_opportunistic() {
    let pki = pki();
    let seen = Seen::default();
    let s = seen.clone();
    let results = run_async(move || async move {
        // AUTH only after TLS: the client must upgrade before it is offered.
        let tls = start(
            &SmtpServerOptions::new()
                .tls(pki.server())
                .require_tls(true)
                .auth(true),
            &s,
        );
        let plain = start(&SmtpServerOptions::new(), &s);
        let tls_addr = tls.local_addr();
        let send = |server: &em::Server, starttls, options: Option<TlsOptions>| {
            let mut client = SmtpClient::new(server.local_addr()).starttls(starttls);
            if server.local_addr() == tls_addr {
                client = client.auth(SmtpAuth::new("alice", "s3cret"));
            }
            if let Some(options) = options {
                client = client.tls_options(options);
            }
            client.send(
                "a@example.org",
                ["b@example.org"],
                "Subject: t\r\n\r\nx\r\n",
            )
        };
        vec![
            send(&tls, StartTls::Required, Some(pki.client())).await,
            send(&tls, StartTls::Opportunistic, Some(pki.client())).await,
            send(&plain, StartTls::Opportunistic, Some(pki.client())).await,
            send(&tls, StartTls::Off, None).await,
            send(&plain, StartTls::Required, Some(pki.client())).await,
            // Mozilla's roots do not include the test CA.
            send(&tls, StartTls::Required, None).await,
        ]
    });
    for ok in &results[..3] {
        assert_eq!(ok.as_ref().unwrap().reply.code(), 250, "{ok:?}");
    }
    assert_eq!(
        seen.events()
            .iter()
            .filter(|e| e.starts_with("message"))
            .collect::<Vec<_>>(),
        [
            "message tls=true user=Some(\"alice\")",
            "message tls=true user=Some(\"alice\")",
            "message tls=false user=None",
        ]
    );
    let off = results[3].as_ref().unwrap_err();
    assert!(off.is_auth(), "{off:?}"); // AUTH is not offered before TLS
    let not_offered = results[4].as_ref().unwrap_err();
    assert!(not_offered.is_tls(), "{not_offered:?}");
    assert!(
        not_offered
            .to_string()
            .starts_with("SMTP: STARTTLS is required but 127.0.0.1:"),
        "{not_offered}"
    );
    assert!(not_offered.to_string().ends_with(" does not offer it"));
    let untrusted = results[5].as_ref().unwrap_err();
    assert!(untrusted.is_tls(), "{untrusted:?}");
    assert!(
        untrusted.to_string().contains("unknown issuer"),
        "{untrusted}"
    );
}

#[test]
fn client_reports_refused_senders_recipients_and_messages() {
    for pipelining in [true, false] {
        let seen = Seen::default();
        let s = seen.clone();
        let results = run_async(move || async move {
            let server = start(&SmtpServerOptions::new(), &s);
            let client = SmtpClient::new(server.local_addr()).pipelining(pipelining);
            vec![
                client
                    .send_mail("spammer@example.org", ["b@example.org"], "x")
                    .await,
                client
                    .send_mail(
                        "a@example.org",
                        ["nobody@example.org", "nobody@example.net"],
                        "x",
                    )
                    .await,
                client
                    .send_mail("a@example.org", ["b@example.org"], "REFUSE ME")
                    .await,
            ]
        });
        let sender = results[0].as_ref().unwrap_err();
        assert!(sender.is_sender_refused(), "{sender:?}");
        assert_eq!(sender.reply().unwrap().code(), 550);
        let recipients = results[1].as_ref().unwrap_err();
        assert!(recipients.is_recipients_refused(), "{recipients:?}");
        assert_eq!(
            recipients.to_string(),
            "SMTP: the server refused every recipient (<nobody@example.org>: 550 5.1.1 Recipient refused; <nobody@example.net>: 550 5.1.1 Recipient refused)"
        );
        assert_eq!(recipients.recipients().len(), 2);
        assert!(recipients.recipients().iter().all(|r| !r.is_accepted()));
        let message = results[2].as_ref().unwrap_err();
        assert!(message.is_message_refused(), "{message:?}");
        assert_eq!(
            message.to_string(),
            "SMTP: the server refused the message: 554 5.7.1 Message refused"
        );
        assert_eq!(message.recipients()[0].address, "b@example.org");
    }
}

#[test]
fn a_message_over_the_size_limit_is_refused_with_552_and_the_connection_stays() {
    // em's client declares SIZE= in MAIL FROM: refused there.
    let seen = Seen::default();
    let s = seen.clone();
    let too_big = run_async(move || async move {
        let server = start(&SmtpServerOptions::new().max_message_size(100), &s);
        SmtpClient::new(server.local_addr())
            .send_mail("a@example.org", ["b@example.org"], "x".repeat(200))
            .await
    })
    .unwrap_err();
    assert!(too_big.is_sender_refused(), "{too_big:?}");
    assert_eq!(
        too_big.to_string(),
        "SMTP: the server refused the sender <a@example.org>: 552 5.3.4 Message size exceeds fixed maximum message size"
    );
    // A client that declares nothing is refused after the final dot, and
    // the connection goes on.
    let codes = with_peer(
        SmtpServerOptions::new().max_message_size(100),
        &seen,
        |port| {
            let mut c = LineClient::connect(("127.0.0.1", port));
            let mut codes = vec![reply(&mut c)];
            for line in ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"] {
                codes.push(round(&mut c, line));
            }
            for _ in 0..10 {
                send(&mut c, &"y".repeat(30));
            }
            codes.push(round(&mut c, "."));
            codes.push(round(&mut c, "NOOP"));
            codes.push(round(&mut c, "MAIL FROM:<a@b>"));
            codes
        },
    );
    assert_eq!(
        codes,
        [
            "220 localhost ESMTP em",
            "250 localhost greets c|SIZE 100|8BITMIME|PIPELINING|ENHANCEDSTATUSCODES|HELP",
            "250 2.1.0 Sender OK",
            "250 2.1.5 Recipient OK",
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "250 2.0.0 OK",
            "250 2.1.0 Sender OK",
        ]
    );
    assert!(seen.messages().is_empty());
}

// ---- The server's replies, read by a raw line client. ----

/// Reads one reply (every line of a multi-line one), its lines joined
/// with `|`, the code only once.
fn reply(c: &mut LineClient) -> String {
    let mut lines = Vec::new();
    loop {
        let line = c.recv();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(if lines.is_empty() {
            line.clone()
        } else {
            line[4..].to_owned()
        });
        if last {
            let mut joined = lines.join("|");
            joined.replace_range(3..4, " ");
            return joined;
        }
    }
}

/// Sends `line` with a CRLF (SMTP's line ending: a bare LF does not end
/// the message data).
fn send(c: &mut LineClient, line: &str) {
    c.writer()
        .write_all(format!("{line}\r\n").as_bytes())
        .unwrap();
}

/// Sends `line` and reads the reply.
fn round(c: &mut LineClient, line: &str) -> String {
    send(c, line);
    reply(c)
}

#[test]
fn a_bare_lf_dot_does_not_end_the_data_so_no_command_is_smuggled() {
    let seen = Seen::default();
    let payload: &[u8] = b"Subject: s\r\n\r\nfoo\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\n\
        DATA\r\nsmuggled\r\n.\n.\r\nbar\r\n..dot\r\n";
    let (codes, rest) = with_peer(SmtpServerOptions::new(), &seen, move |port| {
        let mut c = LineClient::connect(("127.0.0.1", port));
        let mut codes = vec![reply(&mut c)];
        for line in ["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA"] {
            codes.push(round(&mut c, line));
        }
        c.writer().write_all(payload).unwrap();
        codes.push(round(&mut c, "."));
        codes.push(round(&mut c, "QUIT"));
        (codes, c.read_until_closed())
    });
    assert_eq!(
        codes.iter().map(|c| &c[..3]).collect::<Vec<_>>(),
        ["220", "250", "250", "250", "354", "250", "221"],
        "{codes:?}"
    );
    assert!(rest.is_empty(), "{rest:?}");
    let messages = seen.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    // The payload as it came: bare LFs kept, a `.` after a bare LF not
    // unstuffed, one after a CRLF unstuffed (`..dot`, and `.\n.` whose
    // first dot starts a line).
    assert_eq!(
        &messages[0].data[..],
        &b"Subject: s\r\n\r\nfoo\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\n\
        DATA\r\nsmuggled\r\n\n.\r\nbar\r\n.dot\r\n"[..]
    );
    assert_eq!(
        seen.events(),
        [
            "ehlo c",
            "sender a@b",
            "recipient c@d",
            "message tls=false user=None"
        ]
    );
}

#[test]
fn the_server_answers_bad_sequences_unknown_commands_and_long_lines() {
    let seen = Seen::default();
    let (codes, rest) = with_peer(SmtpServerOptions::new(), &seen, |port| {
        let mut c = LineClient::connect(("127.0.0.1", port));
        let mut codes = vec![reply(&mut c)];
        for line in [
            "MAIL FROM:<a@b>",
            "HELO",
            "helo client",
            "RCPT TO:<c@d>",
            "DATA",
            "MAIL FROM:<a@b> FOO=1",
            "MAIL FROM:a@b",
            "MAIL FROM:<a@b>",
            "DATA",
            "RCPT TO:<nobody@d>",
            "DATA",
            "RCPT TO:<c@d> NOTIFY=NEVER",
            "RSET",
            "RSET now",
            "FOO bar",
            "EXPN list",
            "VRFY",
            "VRFY someone",
            "HELP",
            "AUTH PLAIN",
            "STARTTLS",
            "",
            &"x".repeat(5000),
            "NOOP",
            "QUIT",
        ] {
            let got = round(&mut c, line);
            codes.push(got[..3].to_owned() + " " + &line[..line.len().min(24)]);
        }
        (codes, c.read_until_closed())
    });
    assert_eq!(
        codes,
        [
            "220 localhost ESMTP em",
            "503 MAIL FROM:<a@b>",
            "501 HELO",
            "250 helo client",
            "503 RCPT TO:<c@d>",
            "503 DATA",
            "555 MAIL FROM:<a@b> FOO=1",
            "250 MAIL FROM:a@b",
            "503 MAIL FROM:<a@b>",
            "503 DATA",
            "550 RCPT TO:<nobody@d>",
            "554 DATA",
            "555 RCPT TO:<c@d> NOTIFY=NEV",
            "250 RSET",
            "501 RSET now",
            "500 FOO bar",
            "502 EXPN list",
            "501 VRFY",
            "252 VRFY someone",
            "214 HELP",
            "502 AUTH PLAIN",
            "502 STARTTLS",
            "500 ",
            "500 xxxxxxxxxxxxxxxxxxxxxxxx",
            "250 NOOP",
            "221 QUIT",
        ]
    );
    assert!(rest.is_empty(), "the server closed after QUIT");
    assert_eq!(
        seen.events(),
        ["helo client", "sender a@b", "recipient nobody@d", "reset"]
    );
}

#[test]
fn the_server_answers_pipelined_commands_in_order_even_when_answers_come_later() {
    let seen = Seen::default();
    let replies = with_peer(SmtpServerOptions::new(), &seen, |port| {
        let mut c = LineClient::connect(("127.0.0.1", port));
        let mut replies = vec![reply(&mut c)];
        // One write: the server reads them all at once.
        c.writer()
            .write_all(
                b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<slow@d>\r\nRCPT TO:<nobody@d>\r\n\
                  RCPT TO:<drop@d>\r\nRCPT TO:<slow@e>\r\nRCPT TO:<early@d>\r\nRCPT TO:<c@d>\r\n\
                  DATA\r\n",
            )
            .unwrap();
        for _ in 0..9 {
            replies.push(reply(&mut c));
        }
        c.writer()
            .write_all(b"Subject: p\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
            .unwrap();
        for _ in 0..3 {
            replies.push(reply(&mut c));
        }
        replies
    });
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        [
            "220", "250", "250", "250", "550", "451", "250", "251", "250", "354", "250", "250",
            "221"
        ]
    );
    assert_eq!(replies[5], "451 4.3.0 No answer from the handler");
    assert_eq!(
        seen.events(),
        [
            "ehlo c",
            "sender a@b",
            "recipient slow@d",
            "recipient nobody@d",
            "recipient drop@d",
            "recipient slow@e",
            "recipient early@d",
            "recipient c@d",
            "message tls=false user=None",
        ]
    );
    assert_eq!(
        seen.messages()[0].recipients,
        ["slow@d", "slow@e", "early@d", "c@d"]
    );
    assert_eq!(&seen.messages()[0].data[..], b"Subject: p\r\n\r\nbody\r\n");
}

// ---- em's client against scripted servers. ----

/// A server that answers each line with what `script` says (nothing for
/// an empty string), after a first line of `greeting`; records the
/// lines. `close` after a reply closes the connection.
struct Scripted {
    greeting: &'static str,
    script: fn(&str) -> &'static str,
    lines: Rc<RefCell<Vec<String>>>,
    in_data: bool,
}

impl Connection for Scripted {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(10_000)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        if self.greeting == "close" {
            conn.close_connection();
        } else if !self.greeting.is_empty() {
            conn.send_data(self.greeting);
        }
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        let line = line.trim_end_matches('\r').to_owned();
        self.lines.borrow_mut().push(line.clone());
        if self.in_data {
            if line == "." {
                self.in_data = false;
                conn.send_data("250 queued");
            }
            return;
        }
        let answer = (self.script)(&line);
        if answer.starts_with("354") {
            self.in_data = true;
        }
        if !answer.is_empty() {
            conn.send_data(answer);
        }
        if line == "QUIT" {
            conn.close_connection_after_writing();
        }
    }
}

fn scripted(
    greeting: &'static str,
    script: fn(&str) -> &'static str,
    lines: &Rc<RefCell<Vec<String>>>,
) -> em::Server {
    let lines = lines.clone();
    em::start_server("127.0.0.1:0", move || Scripted {
        greeting,
        script,
        lines: lines.clone(),
        in_data: false,
    })
    .unwrap()
}

/// An RFC 821 server: no EHLO.
fn old_server(line: &str) -> &'static str {
    match line.split(' ').next().unwrap_or("") {
        "EHLO" => "502 5.5.2 EHLO not understood",
        "HELO" => "250 old.example",
        "MAIL" | "RCPT" => "250 OK",
        "DATA" => "354 go ahead",
        "QUIT" => "221 bye",
        _ => "500 what?",
    }
}

fn silent(_: &str) -> &'static str {
    ""
}

fn garbage(_: &str) -> &'static str {
    "HTTP/1.1 400 Bad Request"
}

#[test]
fn client_falls_back_to_helo_and_reports_every_failure_in_words() {
    let lines = Rc::new(RefCell::new(Vec::new()));
    let l = lines.clone();
    let results = run_async(move || async move {
        let old = scripted("220 old.example SMTP", old_server, &l);
        let mute = scripted("220 mute.example", silent, &l);
        let http = scripted("220 odd.example", garbage, &l);
        let busy = scripted("421 4.3.2 busy, try later", silent, &l);
        let closing = scripted("close", silent, &l);
        let no_greeting = scripted("", silent, &l);
        let (_guard, nobody) = refusing_addr();
        let send = |addr: em::Addr| {
            SmtpClient::new(addr)
                .timeout(Duration::from_millis(300))
                .send(
                    "a@example.org",
                    ["b@example.org"],
                    "Subject: old\r\n\r\nhi\r\n",
                )
        };
        vec![
            send(old.local_addr()).await.map(|d| d.reply.to_string()),
            send(mute.local_addr()).await.map(|_| String::new()),
            send(http.local_addr()).await.map(|_| String::new()),
            send(busy.local_addr()).await.map(|_| String::new()),
            send(closing.local_addr()).await.map(|_| String::new()),
            send(no_greeting.local_addr()).await.map(|_| String::new()),
            SmtpClient::new(nobody)
                .send_mail("a@example.org", ["b@example.org"], "x")
                .await
                .map(|_| String::new()),
        ]
    });
    assert_eq!(results[0].as_ref().unwrap(), "250 queued");
    let old: Vec<String> = lines.borrow().iter().take(9).cloned().collect();
    assert_eq!(
        old,
        [
            "EHLO localhost",
            "HELO localhost",
            "MAIL FROM:<a@example.org>", // no SIZE= to a server without EHLO
            "RCPT TO:<b@example.org>",
            "DATA",
            "Subject: old",
            "",
            "hi",
            ".",
        ]
    );
    let err = |i: usize| -> &SmtpError { results[i].as_ref().unwrap_err() };
    let text = |i: usize| err(i).to_string();
    assert!(err(1).is_timeout() && !err(1).is_connect(), "{:?}", err(1));
    assert!(
        text(1).starts_with("SMTP: nothing from 127.0.0.1:")
            && text(1).ends_with(" within 300ms (waiting for the reply to EHLO)"),
        "{}",
        text(1)
    );
    assert!(err(2).is_protocol(), "{:?}", err(2));
    assert_eq!(
        text(2),
        "SMTP: not an SMTP reply line: \"HTTP/1.1 400 Bad Request\" (waiting for the reply to EHLO)"
    );
    assert!(err(3).is_protocol(), "{:?}", err(3));
    assert_eq!(err(3).reply().unwrap().code(), 421);
    assert_eq!(
        text(3),
        "SMTP: the server refused the session: 421 4.3.2 busy, try later"
    );
    assert!(err(4).is_closed(), "{:?}", err(4));
    assert!(
        text(4).ends_with(" closed the connection (waiting for the greeting)"),
        "{}",
        text(4)
    );
    assert!(err(5).is_timeout(), "{:?}", err(5));
    assert!(
        text(5).ends_with("(waiting for the greeting)"),
        "{}",
        text(5)
    );
    assert!(err(6).is_connect(), "{:?}", err(6));
    assert!(
        text(6).starts_with("SMTP: cannot connect to 127.0.0.1:"),
        "{}",
        text(6)
    );
    assert!(std::error::Error::source(err(6)).is_some());
}

#[test]
fn client_fails_on_a_reply_of_endless_lines() {
    // A server whose greeting never ends: `220-` lines, far more than the
    // client keeps, then it waits.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut lines = Vec::new();
        for _ in 0..5000 {
            lines.extend_from_slice(b"220-more and more\r\n");
        }
        let _ = s.write_all(&lines);
        // Until the client hangs up.
        let _ = support::read_until_closed(&mut s);
    });
    let result = run_async(move || async move {
        SmtpClient::new(em::Addr::from(addr))
            .timeout(Duration::from_secs(5))
            .send_mail("a@example.org", ["b@example.org"], "x")
            .await
    });
    let err = result.unwrap_err();
    assert!(err.is_protocol(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "SMTP: a multi-line 220 reply of more than 1000 lines (waiting for the greeting)"
    );
    server.join().unwrap();
}

// ---- em's client against Python's aiosmtpd, where it is installed. ----

#[test]
fn client_delivers_to_python_aiosmtpd_if_installed() {
    let probe = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .expect("python3 must be installed");
    if !probe.success() {
        println!(
            "note: Python's aiosmtpd is not installed (pip install aiosmtpd); skipping this test"
        );
        return;
    }
    let script = r#"
import asyncio, sys
from aiosmtpd.smtp import SMTP, AuthResult

class Handler:
    async def handle_DATA(self, server, session, envelope):
        print("from", envelope.mail_from, flush=True)
        print("to", envelope.rcpt_tos, flush=True)
        print("data", repr(envelope.content.decode()), flush=True)
        asyncio.get_running_loop().call_later(0.1, done.set)
        return "250 2.0.0 OK queued"
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"alice", b"s3cret"))

async def main():
    global done
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: SMTP(Handler(), authenticator=authenticator, auth_require_tls=False),
        "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done.wait(), 20)
    srv.close()

asyncio.run(main())
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut port = String::new();
    out.read_line(&mut port).unwrap();
    let port: u16 = port.trim().parse().expect("aiosmtpd's port");
    let result = run_async(move || async move {
        SmtpClient::new(("127.0.0.1", port))
            .auth(SmtpAuth::new("alice", "s3cret"))
            .send_mail(
                "a@example.org",
                ["b@example.org", "nobody@example.org"],
                "Subject: to aiosmtpd\r\n\r\n.dot\r\n",
            )
            .await
    });
    let delivery = result.unwrap();
    assert_eq!(delivery.accepted().collect::<Vec<_>>(), ["b@example.org"]);
    assert_eq!(delivery.reply.to_string(), "250 2.0.0 OK queued");
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut out, &mut printed).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(printed.contains("from a@example.org"), "{printed}");
    assert!(printed.contains("to ['b@example.org']"), "{printed}");
    assert!(
        printed.contains(r"data 'Subject: to aiosmtpd\r\n\r\n.dot\r\n'"),
        "{printed}"
    );
}

proptest::proptest! {
    /// Random bytes, cut anywhere, never panic the SMTP line codec, whose
    /// limit turns an overlong line into a frame rather than an error.
    #[test]
    fn random_input_never_panics_the_smtp_codec(
        input in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![b'\r', b'\n', b'.', b'a', 0xff]),
                proptest::prelude::any::<u8>(),
            ],
            0..400,
        ),
        cut in 0usize..400,
    ) {
        use tokio_util::codec::Decoder;
        let mut codec = em_protocols::SmtpCodec::new_with_max_length(16);
        let cut = cut.min(input.len());
        let mut buf = bytes::BytesMut::from(&input[..cut]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
        buf.extend_from_slice(&input[cut..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
        let _ = codec.decode_eof(&mut buf);
    }
}
