//! A procedural client (em-synchrony's style): `cargo run --example
//! procedural_client [PORT]` connects to 127.0.0.1:PORT (8081 by default),
//! writes, reads the reply and prints it, in straight-line code on the
//! reactor. The EventMachine original is
//! bench/baselines/first_programs/procedural_client.rb.
fn main() -> em::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8081".into());
    em::synchrony(async move {
        let mut socket = em::Socket::connect(format!("127.0.0.1:{port}"), em::RawCodec).await?;
        socket.write("hello\n").await?;
        let reply = socket.read().await?.unwrap_or_default();
        print!("got: {}", String::from_utf8_lossy(&reply));
        socket.close().await
    })?
}
