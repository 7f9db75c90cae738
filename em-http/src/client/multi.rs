//! Several requests at once (em-http-request's `EM::MultiRequest`), each
//! result kept, with a bound on how many run together.

use std::fmt;

use futures_util::StreamExt;

use crate::client::error::ClientResult;
use crate::client::request::RequestBuilder;
use crate::client::response::ClientResponse;

/// A set of requests run together: [`perform`](Multi::perform) awaits them
/// all and gives each one's result, in the order they were added, with
/// each body read whole (see [`ClientResponse::body`]);
/// [`start`](Multi::start) does the same and calls back (the deferrable
/// style). At most [`concurrency`](Multi::concurrency) run at a time
/// (default: all). Reactor thread only.
///
/// ```no_run
/// use em_http::{Client, Multi};
///
/// em_core::run(|| -> em_core::Result<()> {
///     em_core::spawn(async {
///         let client = Client::new();
///         let results = Multi::new()
///             .concurrency(2)
///             .add(client.get("http://127.0.0.1:8080/a"))
///             .add(client.get("http://127.0.0.1:8080/b"))
///             .add(client.get("http://127.0.0.1:8080/c"))
///             .perform()
///             .await;
///         for result in results {
///             match result {
///                 Ok(r) => println!("{} {}", r.url(), r.status()),
///                 Err(e) => println!("{e}"),
///             }
///         }
///         em_core::stop();
///     })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Default)]
pub struct Multi {
    requests: Vec<RequestBuilder>,
    concurrency: Option<usize>,
}

impl fmt::Debug for Multi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multi")
            .field("requests", &self.requests.len())
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl Multi {
    /// An empty set.
    pub fn new() -> Multi {
        Multi::default()
    }

    /// At most `n` requests run at a time (at least 1).
    pub fn concurrency(mut self, n: usize) -> Multi {
        self.concurrency = Some(n.max(1));
        self
    }

    /// Adds a request (EventMachine's `MultiRequest#add`).
    #[allow(clippy::should_implement_trait)] // EventMachine's verb, not `+`
    pub fn add(mut self, request: RequestBuilder) -> Multi {
        self.requests.push(request);
        self
    }

    /// Adds a request, by reference.
    pub fn push(&mut self, request: RequestBuilder) {
        self.requests.push(request);
    }

    /// How many requests are in the set.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Runs every request and gives each result, in the order added.
    pub async fn perform(self) -> Vec<ClientResult<ClientResponse>> {
        let n = self.concurrency.unwrap_or(self.requests.len()).max(1);
        let mut results: Vec<(usize, ClientResult<ClientResponse>)> =
            futures_util::stream::iter(self.requests.into_iter().enumerate().map(
                |(i, request)| async move {
                    let result = match request.send().await {
                        Ok(mut response) => response.buffer().await.map(|_| ()).map(|()| response),
                        Err(e) => Err(e),
                    };
                    (i, result)
                },
            ))
            .buffer_unordered(n)
            .collect()
            .await;
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// Runs every request on the reactor and calls `done` with the
    /// results, in the order added (the deferrable style).
    pub fn start(self, done: impl FnOnce(Vec<ClientResult<ClientResponse>>) + 'static) {
        let count = self.requests.len();
        let task = async move { done(self.perform().await) };
        if let Err(e) = em_core::spawn(task) {
            tracing::warn!(error = %e, requests = count, "Multi::start outside a running reactor: nothing runs");
        }
    }
}
