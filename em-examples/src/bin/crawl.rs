//! `crawl`: a small crawler on em-http's client, limited to one host.
//!
//! Starting from URL (depth 0), it fetches each page, takes the `href`s
//! out of the HTML ones, resolves them against the page's URL (the last
//! redirect's), drops their `#fragment`s, and follows those that stay on
//! the start URL's scheme, host and port and have not been seen, down to
//! `--depth` links from the start, at most `--concurrency` requests in
//! flight, all on one reactor thread. Prints each URL as it is done
//! (`STATUS depth=D URL`, or `ERROR depth=D URL: why`), then a summary.
//!
//! Exits 0 once every page was fetched (whatever its status code), 1 if a
//! fetch failed (connection refused, timeout, too many redirects…).

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
use em_http::http::{self, StatusCode};
use em_http::{Client, ClientResult};
use futures::stream::{FuturesUnordered, StreamExt};
use url::Url;

/// Crawl one host with em-http's client: each page with its status and
/// depth, then a summary.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where to start (http:// or https://); only its host is crawled.
    url: Url,
    /// How many links away from URL to go (0: URL alone).
    #[arg(long, default_value_t = 2)]
    depth: u32,
    /// How many requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Stop queueing new pages after this many.
    #[arg(long, default_value_t = 10_000)]
    max_pages: usize,
    /// Trust the CA certificates in this PEM file instead of Mozilla's
    /// roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Do not verify TLS certificates (testing only).
    #[arg(long)]
    insecure: bool,
}

/// One page's outcome: its status and the links found in it.
struct Page {
    url: Url,
    depth: u32,
    fetched: ClientResult<(StatusCode, Url, Vec<Url>)>,
}

fn main() -> ExitCode {
    em_examples::log_to_stderr();
    let args = Args::parse();
    if !matches!(args.url.scheme(), "http" | "https") || args.url.host_str().is_none() {
        eprintln!("crawl: {}: not an http(s) URL", args.url);
        return ExitCode::FAILURE;
    }
    let mut builder = Client::builder().pool_max_idle_per_host(args.concurrency as usize);
    if let Some(ca) = &args.ca {
        builder = builder.root_certs_file(ca);
    }
    if args.insecure {
        builder = builder.danger_accept_invalid_certs();
    }
    let failed = Rc::new(Cell::new(false));
    let failed_in = failed.clone();
    let ran = em::Reactor::builder()
        .stop_on_panic(true)
        .run(move || -> em::Result<()> {
            em::spawn(async move {
                failed_in.set(crawl(builder.build(), args).await > 0);
                em::stop();
            })?;
            Ok(())
        });
    if let Err(e) = ran {
        eprintln!("crawl: {e}");
        return ExitCode::FAILURE;
    }
    if failed.get() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The crawl: a queue of pages to fetch and up to `concurrency` fetches
/// in flight, each finished one feeding its links to the queue. Returns
/// how many fetches failed.
async fn crawl(client: Client, args: Args) -> usize {
    let started = Instant::now();
    let mut start = args.url.clone();
    start.set_fragment(None);
    let mut seen: HashSet<Url> = HashSet::from([start.clone()]);
    let mut queue = VecDeque::from([(start.clone(), 0)]);
    let mut in_flight = FuturesUnordered::new();
    let (mut pages, mut failures, mut deepest) = (0usize, 0usize, 0u32);
    loop {
        while in_flight.len() < args.concurrency as usize {
            let Some((url, depth)) = queue.pop_front() else {
                break;
            };
            let follow = depth < args.depth;
            in_flight.push(fetch(&client, url, depth, follow));
        }
        let Some(page) = in_flight.next().await else {
            break;
        };
        pages += 1;
        deepest = deepest.max(page.depth);
        match page.fetched {
            Ok((status, final_url, links)) => {
                let moved = if final_url != page.url {
                    format!(" -> {final_url}")
                } else {
                    String::new()
                };
                em_examples::out!(
                    "{} depth={} {}{moved}",
                    status.as_u16(),
                    page.depth,
                    page.url
                );
                for link in links {
                    if same_site(&link, &start)
                        && seen.len() < args.max_pages
                        && seen.insert(link.clone())
                    {
                        queue.push_back((link, page.depth + 1));
                    }
                }
            }
            Err(e) => {
                failures += 1;
                em_examples::out!("ERROR depth={} {}: {e}", page.depth, page.url);
            }
        }
    }
    em_examples::out!(
        "crawled {pages} pages ({failures} failed) to depth {deepest} in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    failures
}

/// Fetches one page; when `follow`, reads an HTML body and takes its links
/// (resolved, without fragments); otherwise leaves the body unread.
async fn fetch(client: &Client, url: Url, depth: u32, follow: bool) -> Page {
    let fetched = async {
        let response = client.get(url.as_str()).send().await?;
        let (status, final_url) = (response.status(), response.url().clone());
        let html = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
        let mut links = Vec::new();
        if follow && html && status.is_success() {
            let body = response.bytes().await?;
            for href in hrefs(&body) {
                if let Ok(mut link) = final_url.join(&href) {
                    link.set_fragment(None);
                    links.push(link);
                }
            }
        }
        Ok((status, final_url, links))
    }
    .await;
    Page {
        url,
        depth,
        fetched,
    }
}

/// Whether `link` is on the crawl's site: the start's scheme, host and
/// port.
fn same_site(link: &Url, start: &Url) -> bool {
    link.scheme() == start.scheme()
        && link.host_str() == start.host_str()
        && link.port_or_known_default() == start.port_or_known_default()
}

/// The values of the `href` attributes in an HTML document, `&amp;`
/// decoded.
///
/// A scan, not a parser, on purpose: the HTML parsers of the ecosystem
/// (html5ever under scraper, or Cloudflare's streaming lol_html) bring a
/// DOM or a CSS selector engine and some twenty crates for what is, in a
/// demo that follows links, one attribute. The scan finds `href` followed
/// by `=` (spaces around allowed) in any case, and takes a double-quoted,
/// single-quoted or bare value. It does not know about comments, scripts
/// or `<base>`, so a link written in a comment is followed too; a real
/// crawler wants a parser.
fn hrefs(html: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = find_ignore_case(&html[i..], b"href") {
        i += at + 4;
        // `href` must start an attribute: after a space (or `<a`-like
        // start), not inside a longer name such as `data-href`.
        let before = (i - 4).checked_sub(1).map(|j| html[j]);
        if !before.is_some_and(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let mut j = skip_spaces(html, i);
        if html.get(j) != Some(&b'=') {
            continue;
        }
        j = skip_spaces(html, j + 1);
        let (start, end) = match html.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                let Some(len) = html[j + 1..].iter().position(|&b| b == q) else {
                    break;
                };
                (j + 1, j + 1 + len)
            }
            Some(_) => {
                let len = html[j..]
                    .iter()
                    .position(|&b| b.is_ascii_whitespace() || b == b'>')
                    .unwrap_or(html.len() - j);
                (j, j + len)
            }
            None => break,
        };
        let value = String::from_utf8_lossy(&html[start..end]).replace("&amp;", "&");
        found.push(value.trim().to_owned());
        i = end;
    }
    found
}

fn skip_spaces(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::hrefs;

    #[test]
    fn finds_quoted_and_bare_hrefs() {
        let html = br##"<a href="/a">a</a> <A HREF = 'b.html'>b</A> <a href=c?x=1&amp;y=2>c</a>
            <link data-href="/no"> <a class="x" href="#top">top</a>"##;
        assert_eq!(hrefs(html), ["/a", "b.html", "c?x=1&y=2", "#top"]);
    }
}
