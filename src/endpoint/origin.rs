//! The origin check of WebSocket upgrades: a browser's `Origin` must be one the app
//! configured (`endpoint.url`, an allow-list) or, unset, where `serve` listens.
//!
//! Pure: it reads the request's headers and decides; it must never log the full client
//! string (it cuts it) or touch anything else.

use actix_web::{HttpRequest, http::header};

use crate::config::CheckOrigin;

/// `scheme://host[:port]` lowercased, without a trailing slash or a default port.
pub(crate) fn normalize_origin(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    match origin.split_once("://") {
        Some((scheme, authority)) => {
            format!("{scheme}://{}", strip_default_port(scheme, authority))
        }
        None => origin,
    }
}

/// Applies the origin policy; `Err` says why the origin was refused. `origins` are the
/// allowed origins of `check_origin = true` (`endpoint.url`, or where `serve` listens); when
/// there are none (an app that mounts the endpoint itself and set no `endpoint.url`), the
/// `Origin` is compared with the request's `Host` (logged as a warning once).
pub(crate) fn check_origin(
    policy: &CheckOrigin,
    origins: Option<&[String]>,
    req: &HttpRequest,
) -> Result<(), String> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(()); // not a browser: nothing to check, as in Phoenix
    };
    let origin = origin
        .to_str()
        .map_err(|_| "Origin header is not ASCII".to_string())?;
    let origin = normalize_origin(origin);
    let allowed = |list: &[String]| list.iter().any(|a| normalize_origin(a) == origin);
    match policy {
        CheckOrigin::Enabled(false) => Ok(()),
        CheckOrigin::Enabled(true) => match origins {
            Some(origins) if allowed(origins) => Ok(()),
            Some(_) => Err(format!(
                "Origin `{}` is not endpoint.url (or where the server listens)",
                crate::text::for_log(&origin)
            )),
            None => same_host(&origin, req),
        },
        CheckOrigin::AllowList(list) => {
            if allowed(list) {
                Ok(())
            } else {
                Err(format!(
                    "Origin `{}` is not in endpoint.check_origin",
                    crate::text::for_log(&origin)
                ))
            }
        }
    }
}

/// The fallback without configured origins: the `Origin` must name the request's `Host`.
fn same_host(origin: &str, req: &HttpRequest) -> Result<(), String> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "endpoint.url is not set: the origin check compares the Origin with the request's \
             Host header, which DNS rebinding and some proxies defeat; set endpoint.url"
        )
    });
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| "no Host header to compare the Origin with".to_string())?;
    let (scheme, _) = origin.split_once("://").ok_or_else(|| {
        format!(
            "Origin `{}` is not scheme://host",
            crate::text::for_log(origin)
        )
    })?;
    if normalize_origin(&format!("{scheme}://{host}")) == origin {
        Ok(())
    } else {
        Err(format!(
            "Origin `{}` is not this host `{}`",
            crate::text::for_log(origin),
            crate::text::for_log(host)
        ))
    }
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn request(origin: Option<&str>, host: &str) -> HttpRequest {
        let mut req = TestRequest::default().insert_header((header::HOST, host));
        if let Some(origin) = origin {
            req = req.insert_header((header::ORIGIN, origin));
        }
        req.to_http_request()
    }

    #[test]
    fn configured_origins_not_the_host_header() {
        let policy = CheckOrigin::Enabled(true);
        let url = vec!["https://App.example.com/".to_string()];
        let origins = Some(url.as_slice());
        let ok = |origin, host| check_origin(&policy, origins, &request(Some(origin), host));
        assert!(ok("https://app.example.com", "internal:8080").is_ok());
        assert!(ok("https://app.example.com:443", "x").is_ok());
        // DNS rebinding: Origin and Host both name the attacker's host.
        assert!(ok("http://evil.example", "evil.example").is_err());
        assert!(
            ok("http://app.example.com", "app.example.com").is_err(),
            "scheme counts"
        );
    }

    #[test]
    fn same_host_origin_check() {
        let policy = CheckOrigin::Enabled(true);
        let check_origin =
            |policy: &CheckOrigin, req: &HttpRequest| check_origin(policy, None, req);
        assert!(check_origin(&policy, &request(None, "127.0.0.1:4000")).is_ok());
        assert!(
            check_origin(
                &policy,
                &request(Some("http://127.0.0.1:4000"), "127.0.0.1:4000")
            )
            .is_ok()
        );
        assert!(
            check_origin(
                &policy,
                &request(Some("https://Example.com:443"), "example.com")
            )
            .is_ok()
        );
        assert!(
            check_origin(
                &policy,
                &request(Some("http://evil.example"), "127.0.0.1:4000")
            )
            .is_err()
        );
        assert!(
            check_origin(
                &policy,
                &request(Some("http://127.0.0.1:4001"), "127.0.0.1:4000")
            )
            .is_err()
        );
        assert!(check_origin(&policy, &request(Some("null"), "127.0.0.1:4000")).is_err());
        assert!(
            check_origin(
                &CheckOrigin::Enabled(false),
                &request(Some("http://evil"), "x")
            )
            .is_ok()
        );
    }

    #[test]
    fn allow_list_origin_check() {
        let check_origin =
            |policy: &CheckOrigin, req: &HttpRequest| check_origin(policy, None, req);
        let policy = CheckOrigin::AllowList(vec!["https://app.example.com".into()]);
        assert!(check_origin(&policy, &request(Some("https://app.example.com/"), "x")).is_ok());
        assert!(check_origin(&policy, &request(Some("http://app.example.com"), "x")).is_err());
    }
}
