//! The dashboard at `/ui`: one page and its assets, embedded in the binary, so it works
//! offline and nothing is loaded from elsewhere (the Content-Security-Policy forbids it).
//! The page itself needs no key: it reads the guarded JSON APIs with the client key in a
//! header, asking for it when the server answers 401. Charts are uPlot (MIT), vendored
//! unchanged in `ui/vendor/`.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ResponseBody;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 5] = [
    Asset {
        path: "/ui",
        content_type: "text/html; charset=utf-8",
        body: include_str!("ui/index.html"),
    },
    Asset {
        path: "/ui/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/app.js"),
    },
    Asset {
        path: "/ui/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/app.css"),
    },
    Asset {
        path: "/ui/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/vendor/uPlot.iife.min.js"),
    },
    Asset {
        path: "/ui/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/vendor/uPlot.min.css"),
    },
];

/// Only this server's own scripts, styles and API; no inline code, no frames around it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/ui/" { "/ui" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The dashboard's page or asset at `path`, if there is one.
pub(super) fn serve(path: &str) -> Option<Response<ResponseBody>> {
    let asset = find(path)?;
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(
        asset.body.as_bytes(),
    )));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let mut set = |name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_TYPE, asset.content_type);
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    // The assets change with the binary; a restarted ccr must not be shown an old page.
    set(header::CACHE_CONTROL, "no-cache");
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `attr="…"` values in the page.
    fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
        let marker = format!("{attr}=\"");
        html.match_indices(&marker)
            .filter_map(|(at, _)| html[at + marker.len()..].split('"').next())
            .collect()
    }

    #[test]
    fn every_asset_the_page_names_is_served_from_here() {
        let page = find("/ui").unwrap().body;
        let named: Vec<&str> = attribute_values(page, "src")
            .into_iter()
            .chain(attribute_values(page, "href"))
            .filter(|v| !v.starts_with("data:"))
            .collect();
        assert_eq!(named.len(), 4, "{named:?}");
        for path in named {
            let response = serve(path).unwrap_or_else(|| panic!("{path} is served"));
            let csp = &response.headers()[header::CONTENT_SECURITY_POLICY];
            assert!(csp.to_str().unwrap().contains("default-src 'none'"));
        }
        assert!(serve("/ui/").is_some());
        assert!(serve("/ui/missing.js").is_none());
        assert_eq!(
            serve("/ui/app.js").unwrap().headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_sends_the_key_only_as_a_header() {
        for own in ["/ui", "/ui/app.js", "/ui/app.css"] {
            let text = find(own).unwrap().body;
            for outside in ["http://", "https://", "//cdn", "url("] {
                assert!(!text.contains(outside), "{own} names {outside}");
            }
        }
        let script = find("/ui/app.js").unwrap().body;
        assert!(
            script.contains(r#"const KEY_HEADER = "x-api-key";"#)
                && script.contains("headers[KEY_HEADER] = key"),
            "the key goes in the x-api-key header"
        );
        // The key never enters a URL: no query parameter, fragment or path is built from it.
        for leak in [
            "?key", "&key", "key=", "api_key=", "#key", "location", "+ key", "${key}",
        ] {
            assert!(!script.contains(leak), "app.js contains {leak:?}");
        }
        let fetches = script.matches("fetch(").count();
        assert_eq!(fetches, 1, "one place fetches: getJson");
    }
}
