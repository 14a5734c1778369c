//! The background sender: one thread with its own tokio runtime (it owns the SMTP sockets)
//! claims due outbox entries, renders them, hands them to the backend (console, SMTP) and
//! acks them, or retries with exponential backoff until `retry_for_seconds` after the change.
//! Nothing here ever logs a body, a link or a token.

use super::templates::{self, Extra};
use super::tokens::{encode_uid, Purpose};
use super::{Mail, Mailer};
use crate::clock::now;
use crate::config::types::{SmtpTls, SmtpUrl};
use crate::config::{ConsoleFormat, MailBackend};
use crate::metrics::{MAIL_OUTBOX, MAIL_SENT};
use crate::store::{MailKind, OutboxEntry, User, UserStore};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Entries claimed per round.
const BATCH: usize = 16;
/// How often the outbox is looked at without a wake-up (retries, other replicas' mails).
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two tries of one mail.
const MAX_BACKOFF_SECONDS: u64 = 15 * 60;

/// Seconds before try `attempts + 1` after `attempts` failures: 1, 2, 4, ... up to 15 min.
pub fn backoff(attempts: u32) -> u64 {
    2u64.saturating_pow(attempts.saturating_sub(1))
        .min(MAX_BACKOFF_SECONDS)
}

/// `GATEHOUSE_EMAIL_SMTP_URL`, parsed (`config::types::SmtpUrl`), and the transport it makes.
#[derive(Clone)]
pub struct SmtpTarget {
    url: SmtpUrl,
}

impl SmtpTarget {
    /// `GATEHOUSE_EMAIL_SMTP_URL`, which `backend = "smtp"` needs; errors name the variable
    /// and never repeat its value (it holds a password).
    pub fn from_env() -> Result<SmtpTarget, String> {
        let var = crate::config::env::EMAIL_SMTP_URL_VAR;
        let url = std::env::var(var).map_err(|_| {
            format!("email.backend = \"smtp\" needs {var} (e.g. smtp://user:pass@host:587)")
        })?;
        SmtpTarget::parse(&url).map_err(|e| format!("{var}: {e}"))
    }

    pub fn parse(text: &str) -> Result<SmtpTarget, String> {
        SmtpUrl::parse(text).map(|url| SmtpTarget { url })
    }

    /// Host, port and TLS mode; never the user's password.
    pub fn describe(&self) -> String {
        self.url.describe()
    }

    fn transport(&self, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let url = &self.url;
        let params = || {
            TlsParameters::new(url.host.clone())
                .map_err(|e| format!("TLS set-up for {}: {e}", url.host))
        };
        let tls = match url.tls {
            SmtpTls::StartTls => Tls::Required(params()?),
            SmtpTls::Implicit => Tls::Wrapper(params()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host)
            .port(url.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some((user, password)) = url.user() {
            builder = builder.credentials(Credentials::new(user.to_string(), password.to_string()));
        }
        Ok(builder.build())
    }
}

/// Where mails go.
pub enum Backend {
    Console(ConsoleFormat),
    /// The transport, and how long one whole exchange may take (lettre's own timeout
    /// covers only the connect).
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>, Duration),
}

/// Why a send failed.
#[derive(Debug)]
pub enum SendError {
    /// Worth another try (the server is down, slow, or answered 4xx).
    Transient(String),
    /// Never going to work (an address that does not parse, a 5xx answer).
    Permanent(String),
}

impl Backend {
    /// The configured backend; `None` for `backend = "none"`. An unusable SMTP URL is a
    /// start-up error naming the variable.
    pub fn from_config(mailer: &Mailer) -> Result<Option<Backend>, String> {
        let var = crate::config::env::EMAIL_SMTP_URL_VAR;
        match mailer.config.backend {
            MailBackend::None => Ok(None),
            MailBackend::Console => Ok(Some(Backend::Console(mailer.config.console_format))),
            MailBackend::Smtp => {
                let target = SmtpTarget::from_env()?;
                let timeout = Duration::from_secs(mailer.config.smtp_timeout_seconds);
                let transport = target
                    .transport(timeout)
                    .map_err(|e| format!("{var}: {e}"))?;
                log::info!("mail: SMTP to {}", target.describe());
                Ok(Some(Backend::Smtp(Box::new(transport), timeout)))
            }
        }
    }

    async fn send(&self, mail: &Mail) -> Result<(), SendError> {
        match self {
            Backend::Console(format) => {
                console(mail, *format).map_err(|e| SendError::Transient(format!("stdout: {e}")))
            }
            Backend::Smtp(transport, timeout) => {
                let message = message(mail)?;
                match tokio::time::timeout(*timeout, transport.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
                    Ok(Err(e)) => Err(SendError::Transient(e.to_string())),
                    Err(_) => Err(SendError::Transient(format!(
                        "no answer within {} s",
                        timeout.as_secs()
                    ))),
                }
            }
        }
    }
}

fn message(mail: &Mail) -> Result<Message, SendError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| SendError::Permanent(format!("{what}: {e}"));
    Message::builder()
        .from(mail.from.parse().map_err(|e| bad("the from address", &e))?)
        .to(mail
            .to
            .parse()
            .map_err(|e| bad("the recipient address", &e))?)
        .subject(mail.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| bad("the message", &e))
}

/// The console backend: the whole mail on stdout, framed (as Django's console backend) or
/// as one JSON line, written at once so no other line lands inside it.
fn console(mail: &Mail, format: ConsoleFormat) -> std::io::Result<()> {
    let text = match format {
        ConsoleFormat::Json => {
            let line = serde_json::json!({"mail": {
                "kind": mail.kind.label(), "from": mail.from, "to": mail.to,
                "subject": mail.subject, "body": mail.body,
            }});
            format!("{line}\n")
        }
        ConsoleFormat::Text => {
            let rule = "-".repeat(72);
            format!(
                "{rule}\nMail ({}) from gatehouse's console backend\nFrom: {}\nTo: {}\nSubject: {}\n\n{}\n{rule}\n",
                mail.kind.label(),
                mail.from,
                mail.to,
                mail.subject,
                mail.body
            )
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// What to do with a claimed entry, decided from the user as it is now.
enum Plan {
    Send(Mail),
    /// Not worth sending any more (the user or its address changed, already verified).
    Stale,
}

fn plan(mailer: &Mailer, entry: &OutboxEntry, user: Option<&User>) -> Plan {
    let m = &entry.mail;
    let Some(user) = user else {
        return Plan::Stale;
    };
    let same_address = crate::store::name_key(&user.email) == crate::store::name_key(&m.to);
    let t = now();
    let link = |purpose: Purpose, template: &str| {
        let token = mailer.tokens.make(purpose, user, t);
        let uid = encode_uid(user.id);
        templates::fill(template, &|name| match name {
            "uid" => Some(uid.as_str()),
            "token" => Some(token.as_str()),
            _ => None,
        })
    };
    let link = match m.kind {
        MailKind::PasswordReset if user.is_active && same_address => Some(link(
            Purpose::PasswordReset,
            &mailer.config.password_reset_url,
        )),
        MailKind::VerifyEmail if user.is_active && same_address && !user.email_verified => {
            Some(link(Purpose::VerifyEmail, &mailer.config.verify_email_url))
        }
        MailKind::PasswordReset | MailKind::VerifyEmail => return Plan::Stale,
        MailKind::PasswordChanged
        | MailKind::EmailChanged
        | MailKind::MfaEnabled
        | MailKind::MfaDisabled
        | MailKind::RecoveryCodesRenewed
        | MailKind::MfaReplayRefused
        | MailKind::MfaLocked
        | MailKind::ApikeyCreated => None,
    };
    let (subject, body) = templates::render(
        &mailer.config.templates,
        m.kind,
        user,
        Extra {
            link: link.as_deref(),
            new_email: m.new_email.as_deref(),
            api_key: m.api_key.as_deref(),
            account: m.account.as_deref(),
        },
    );
    Plan::Send(Mail {
        kind: m.kind,
        from: mailer.config.from.clone(),
        to: m.to.clone(),
        subject,
        body,
    })
}

/// Starts the sender thread when mail is on. Fails (at start-up) on an unusable backend.
pub fn start(store: Arc<dyn UserStore>, mailer: Arc<Mailer>) -> Result<(), String> {
    let Some(backend) = Backend::from_config(&mailer)? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("mail sender runtime: {e}"))?;
    std::thread::Builder::new()
        .name("gatehouse-mail".into())
        .spawn(move || runtime.block_on(run(store, mailer, backend)))
        .map_err(|e| format!("mail sender thread: {e}"))?;
    Ok(())
}

async fn run(store: Arc<dyn UserStore>, mailer: Arc<Mailer>, backend: Backend) {
    // A claim outlives one SMTP exchange: nobody else takes a mail while it is being sent.
    let lease = mailer.config.smtp_timeout_seconds.saturating_mul(3).max(30);
    loop {
        let claimed = match store.claim_mails(now(), lease, BATCH).await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("mail: cannot read the outbox: {e}");
                Vec::new()
            }
        };
        let busy = claimed.len() == BATCH;
        for entry in claimed {
            deliver(store.as_ref(), &mailer, &backend, entry).await;
        }
        if let Ok(depth) = store.outbox_depth().await {
            MAIL_OUTBOX.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        if !busy {
            let _ = tokio::time::timeout(POLL, mailer.wake.notified()).await;
        }
    }
}

async fn deliver(store: &dyn UserStore, mailer: &Mailer, backend: &Backend, entry: OutboxEntry) {
    let kind = entry.mail.kind.label();
    let user = match store.get_user(entry.mail.user_id).await {
        Ok(u) => u,
        Err(e) => {
            log::warn!("mail {} ({kind}): cannot read user: {e}", entry.id);
            let _ = store
                .retry_mail(
                    entry.id,
                    entry.attempts,
                    now() + backoff(entry.attempts + 1),
                )
                .await;
            return;
        }
    };
    let outcome = match plan(mailer, &entry, user.as_ref()) {
        Plan::Stale => Err(("stale", String::new())),
        Plan::Send(mail) => match backend.send(&mail).await {
            Ok(()) => Ok(()),
            Err(SendError::Permanent(e)) => Err(("rejected", e)),
            Err(SendError::Transient(e)) => Err(("failed", e)),
        },
    };
    let result = match outcome {
        Ok(()) => "sent",
        Err(("failed", e)) => {
            let attempts = entry.attempts.saturating_add(1);
            let next = now() + backoff(attempts);
            if next
                > entry
                    .mail
                    .created_at
                    .saturating_add(mailer.config.retry_for_seconds)
            {
                log::warn!(
                    "mail {} ({kind}) to user {}: giving up after {attempts} tries: {e}",
                    entry.id,
                    entry.mail.user_id
                );
                "gave_up"
            } else {
                // Recorded before it is said: once the log says "next in", the lease is
                // released (a crash after the line cannot hold the mail for a lease).
                if let Err(e) = store.retry_mail(entry.id, attempts, next).await {
                    log::warn!("mail {}: cannot record the retry: {e}", entry.id);
                }
                log::warn!(
                    "mail {} ({kind}) to user {}: try {attempts} failed, next in {} s: {e}",
                    entry.id,
                    entry.mail.user_id,
                    backoff(attempts)
                );
                MAIL_SENT.with_label_values(&[kind, "failed"]).inc();
                return;
            }
        }
        Err((result, e)) => {
            if !e.is_empty() {
                log::warn!(
                    "mail {} ({kind}) to user {}: {result}: {e}",
                    entry.id,
                    entry.mail.user_id
                );
            }
            result
        }
    };
    MAIL_SENT.with_label_values(&[kind, result]).inc();
    if let Err(e) = store.ack_mail(entry.id).await {
        log::warn!("mail {}: cannot remove it from the outbox: {e}", entry.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_quarter_hour() {
        assert_eq!(
            (1..=5).map(backoff).collect::<Vec<_>>(),
            vec![1, 2, 4, 8, 16]
        );
        assert_eq!(backoff(40), MAX_BACKOFF_SECONDS);
    }
}
