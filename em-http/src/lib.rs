//! em-http: an evented HTTP/1.1 server on em's connections (work in progress).
