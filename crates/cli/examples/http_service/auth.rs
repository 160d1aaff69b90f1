//! Who a request acts for: the development header, the session check a real service
//! writes, and the webhook's Svix signature.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jobprep_repo::Error;
use jobprep_users::UserId;
use sha2::Sha256;

use crate::errors::{ApiError, SignatureError};

/// The request header that names the caller in development mode.
pub const USER_HEADER: &str = "x-user-id";

/// The environment variable that holds the webhook's signing secret (`whsec_...`).
pub const WEBHOOK_SECRET_ENV: &str = "CLERK_WEBHOOK_SECRET";

/// How far `svix-timestamp` may be from the service's clock, either way (Svix's default).
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// How the service authenticates its callers, set once at start-up (see the module
/// docs).
#[derive(Clone, Debug)]
pub struct Auth {
    /// Verifies the webhook; `None` only in development mode without a secret.
    webhook: Option<Arc<WebhookVerifier>>,
    /// Development mode: [`authenticate`] trusts the `x-user-id` header.
    insecure_dev: bool,
}

impl Auth {
    /// From the webhook's signing secret (`whsec_...`; empty counts as none) and the
    /// development flag. Without a secret only development mode starts; a secret that
    /// does not decode never does.
    pub fn new(webhook_secret: Option<&str>, insecure_dev: bool) -> Result<Auth, String> {
        let webhook = match webhook_secret.map(str::trim).filter(|s| !s.is_empty()) {
            Some(secret) => Some(Arc::new(WebhookVerifier::new(secret, WEBHOOK_TOLERANCE)?)),
            None if insecure_dev => None,
            None => {
                return Err(format!(
                    "set {WEBHOOK_SECRET_ENV} to the auth provider's webhook signing secret \
                     (whsec_...), or pass --insecure-dev-auth for development"
                ))
            }
        };
        Ok(Auth {
            webhook,
            insecure_dev,
        })
    }

    /// One line for the start-up log: what is verified and what is trusted.
    pub fn describe(&self) -> String {
        let webhook = if self.webhook.is_some() {
            "webhook signatures are verified".to_owned()
        } else {
            format!("INSECURE: webhooks are not verified (no {WEBHOOK_SECRET_ENV})")
        };
        let callers = if self.insecure_dev {
            format!(
                "INSECURE: the {USER_HEADER} header is trusted as the caller (--insecure-dev-auth)"
            )
        } else {
            "no session is verified, so every user route answers 401 until authenticate() \
             checks sessions"
                .to_owned()
        };
        format!("{webhook}; {callers}")
    }

    /// Checks a webhook request before anything reads its body.
    pub(crate) fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        match &self.webhook {
            Some(verifier) => verifier
                .verify(headers, body, unix_now())
                .map_err(ApiError::WebhookSignature),
            // Development mode without a secret, refused at start-up otherwise.
            None => Ok(()),
        }
    }
}

/// The acting user of a request to any route but the webhook.
///
/// **This is where a real service authenticates its callers, and this example does
/// not**: outside development mode it refuses every request (401). Put your session
/// check here. For the original app's provider (Clerk) that is the session token, a JWT
/// in `Authorization: Bearer ...` (or the browser's `__session` cookie): verify its
/// signature against the provider's JWKS, its `exp` and `nbf`, and its `azp` against
/// your own origins; the user id is its `sub` claim. Anything that does not verify is
/// [`ApiError::Unauthenticated`].
///
/// In development mode (`--insecure-dev-auth`) it trusts the `x-user-id` header, so any
/// caller can act as any user, if it holds a [`tag_safe_user_id`] (the reason for a
/// refusal goes to the service's log).
pub fn authenticate(parts: &Parts, auth: &Auth) -> Result<UserId, ApiError> {
    if !auth.insecure_dev {
        return Err(ApiError::Unauthenticated);
    }
    let header = parts
        .headers
        .get(USER_HEADER)
        .ok_or(ApiError::Unauthenticated)?;
    let id = header.to_str().map_err(|_| ApiError::Unauthenticated)?;
    tag_safe_user_id(id).map_err(|reason| {
        eprintln!("http_service: 401: {USER_HEADER} {reason}");
        ApiError::Unauthenticated
    })
}

/// A user id as `UserId::new` takes it (non-blank, at most 255 characters, no NUL),
/// and without `,` or whitespace: the library allows both, but the id goes into the
/// `x-cache-tags` header, a comma-separated list, where a comma would split one tag
/// into two. Used for `x-user-id` and for the webhook's `data.id`.
pub fn tag_safe_user_id(id: &str) -> Result<UserId, String> {
    if id.contains(',') || id.chars().any(char::is_whitespace) {
        return Err("must not contain commas or whitespace".to_owned());
    }
    UserId::new(id).map_err(|error| match error {
        Error::InvalidInput { reason, .. } => reason,
        other => other.to_string(),
    })
}

type HmacSha256 = Hmac<Sha256>;

/// Verifies the auth provider's webhook signatures as Svix specifies them (see the
/// module docs).
#[derive(Clone)]
pub struct WebhookVerifier {
    key: Vec<u8>,
    tolerance: Duration,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("key", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl WebhookVerifier {
    /// The verifier for `secret`: `whsec_` and the base64 key, as the provider shows it
    /// (the bare base64 is taken too, as Svix's own libraries do), accepting timestamps
    /// within `tolerance` of the clock.
    pub fn new(secret: &str, tolerance: Duration) -> Result<WebhookVerifier, String> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = BASE64
            .decode(encoded)
            .map_err(|error| format!("{WEBHOOK_SECRET_ENV} is not whsec_ and base64: {error}"))?;
        // An empty key is one anyone can sign with.
        if key.is_empty() {
            return Err(format!("{WEBHOOK_SECRET_ENV} holds an empty key"));
        }
        Ok(WebhookVerifier { key, tolerance })
    }

    /// Checks the `svix-id`, `svix-timestamp` and `svix-signature` headers against
    /// `body`, the raw bytes as received, at `now` (Unix seconds).
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), SignatureError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .ok_or(SignatureError::MissingHeader(name))
        };
        let id = header("svix-id")?;
        let timestamp = header("svix-timestamp")?;
        let signatures = header("svix-signature")?;
        let sent: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        if now.abs_diff(sent) > self.tolerance.as_secs() {
            return Err(SignatureError::Stale);
        }
        // HMAC takes a key of any length; this cannot fail.
        let mut mac =
            HmacSha256::new_from_slice(&self.key).map_err(|_| SignatureError::Mismatch)?;
        for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
            mac.update(part);
        }
        // Several entries during a secret rotation; other versions than v1 are skipped.
        let matches = signatures
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|signature| BASE64.decode(signature).ok())
            // `verify_slice` compares in constant time.
            .any(|signature| mac.clone().verify_slice(&signature).is_ok());
        if matches {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// The clock, in Unix seconds (0 before 1970, which no timestamp is near).
fn unix_now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}
