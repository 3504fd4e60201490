//! HTTP Basic for the dashboard and `/metrics`: user `admin` and the configured password,
//! compared in constant time (both sides are hashed first, so neither the content nor the
//! length of the password leaks through timing).
//!
//! It must never log or echo the credentials it is given.

use actix_web::{HttpRequest, HttpResponse, http::header};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The one user name the dashboard accepts.
pub(crate) const USER: &str = "admin";

/// Whether `req` carries `Authorization: Basic` credentials for [`USER`] and `password`.
pub(crate) fn authorized(req: &HttpRequest, password: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        });
    let Some(given) = given else {
        return false;
    };
    let expected = format!("{USER}:{password}");
    same_secret(&given, expected.as_bytes())
}

/// Constant-time equality of two secrets of any lengths (compares their SHA-256 digests).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

/// The answer to missing or wrong credentials: 401 with a Basic challenge.
pub(crate) fn challenge() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((
            header::WWW_AUTHENTICATE,
            r#"Basic realm="tether", charset="UTF-8""#,
        ))
        .body("authentication required")
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn basic(credentials: &str) -> HttpRequest {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Basic {encoded}")))
            .to_http_request()
    }

    #[test]
    fn only_admin_with_the_password_passes() {
        assert!(authorized(&basic("admin:s3cret"), "s3cret"));
        assert!(!authorized(&basic("admin:s3cre"), "s3cret"));
        assert!(!authorized(&basic("admin:s3cret2"), "s3cret"));
        assert!(!authorized(&basic("root:s3cret"), "s3cret"));
        assert!(!authorized(&basic("admin"), "s3cret"));
        assert!(!authorized(
            &TestRequest::default().to_http_request(),
            "s3cret"
        ));
        let garbage = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic %%%"))
            .to_http_request();
        assert!(!authorized(&garbage, "s3cret"));
        let bearer = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer admin:s3cret"))
            .to_http_request();
        assert!(!authorized(&bearer, "s3cret"));
    }
}
