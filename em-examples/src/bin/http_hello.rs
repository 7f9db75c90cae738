//! The TechEmpower plaintext and JSON responses on em-http:
//! `http_hello --listen ADDR` (default 127.0.0.1:8080). `GET /` and
//! `GET /plaintext` answer `Hello, World!` (`text/plain`), `GET /json`
//! answers `{"message":"Hello, World!"}`; anything else is 404. Prints
//! `listening on ADDR` once ready; stops gracefully on SIGINT/SIGTERM.
//! `bench/http.sh` measures it against hyper and thin.

use clap::Parser;
use em_http::http::{header, HeaderValue, Request, Response, StatusCode};
use em_http::{Body, ResponseBody};

/// Serves the TechEmpower plaintext and JSON tests' responses.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
}

fn respond(content_type: &'static str, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::from(body));
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("em"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn hello(request: Request<Body>) -> Response<ResponseBody> {
    match request.uri().path() {
        "/" | "/plaintext" => respond("text/plain", "Hello, World!"),
        "/json" => respond("application/json", r#"{"message":"Hello, World!"}"#),
        _ => {
            let mut response = respond("text/plain", "Not Found\n");
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let server = em_http::serve(args.listen.as_str(), hello)?;
        em_examples::stop_on_signal()?;
        em_examples::out!("listening on {}", server.local_addr());
        Ok(())
    })?;
    Ok(())
}
