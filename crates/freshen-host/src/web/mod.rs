//! What `watch` serves on the configured `listen` address: the status
//! page (`/`), Prometheus metrics (`/metrics`), the `status` document
//! (`/api/status`) and `/healthz`. Every request reads the state database
//! read-only ([`crate::State::open_reader`]), so it never waits for a pass;
//! what only the running watch knows (pass durations, publications it
//! saw) is kept in [`Live`].

mod chart;
pub mod metrics;
pub mod page;
mod server;

pub use metrics::Live;
pub use server::{serve, Server};

/// Text for HTML, in element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(super::escape(r#"<img src=x onerror="a('b')">&"#), "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;");
    }
}
