//! The one helper every page handler needs: an askama template as an HTTP response.
//!
//! It must never show a template error to the client (it is logged; the client gets a plain
//! 500).

use actix_web::HttpResponse;

/// `template` rendered as a `200 text/html; charset=utf-8` response, or a plain 500 (the error
/// is logged) if it fails to render. tether re-exports the askama it is built with
/// ([`crate::askama`]): derive your templates with it (and `askama = tether::askama` in the
/// `#[template(…)]`, unless your crate depends on askama 0.16 itself), so that
/// [`Html`](crate::commander::Html) values (scripts, counters, live regions) render inside
/// them unescaped.
///
/// ```
/// use tether::askama::Template;
///
/// #[derive(Template)]
/// #[template(source = "<h1>{{ title }}</h1>", ext = "html", askama = tether::askama)]
/// struct Page { title: String }
///
/// async fn index() -> actix_web::HttpResponse {
///     tether::render(&Page { title: "Hello".into() })
/// }
/// # let response = futures_util::FutureExt::now_or_never(index()).unwrap();
/// # assert_eq!(response.status(), 200);
/// ```
pub fn render(template: &impl askama::Template) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(err) => {
            tracing::error!("template failed to render: {err}");
            HttpResponse::InternalServerError().body("internal server error")
        }
    }
}
