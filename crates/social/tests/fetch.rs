//! The document fetcher's refusals, against a loopback server that answers what each test
//! needs (a redirect, an endless chunked body, a plain document).

use std::net::SocketAddr;
use tessera_config::source::{MAX_DOCUMENT_BYTES, SourceError, SourcePolicy};
use tessera_social::fetch::document;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The loopback server is plain HTTP on 127.0.0.1, which only a policy allowing both reaches.
fn lenient() -> SourcePolicy {
    SourcePolicy {
        allow_http: true,
        allow_private_networks: true,
        ..SourcePolicy::default()
    }
}

/// Serves every connection with `respond`, after reading the request head.
async fn server<F, Fut>(respond: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let respond = std::sync::Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                respond(stream).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_small_document_is_fetched() {
    let addr = server(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .await;
    })
    .await;
    let body = document(&format!("http://{addr}/schema.json"), None, &lenient())
        .await
        .expect("fetched");
    assert_eq!(body, b"{}");
}

#[tokio::test]
async fn a_redirect_is_an_error_naming_the_url_and_its_target() {
    let addr = server(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    })
    .await;
    let url = format!("http://{addr}/schema.json");
    let err = document(&url, None, &lenient())
        .await
        .expect_err("redirect");
    let SourceError::Http { url: named, reason } = &err else {
        panic!("expected an HTTP error, got {err:?}");
    };
    assert_eq!(named, &url);
    assert!(
        reason.contains("302") && reason.contains("http://169.254.169.254/latest"),
        "{err}"
    );
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_at_the_cap() {
    let addr = server(|mut s| async move {
        if s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        // 64 KiB chunks for as long as the client reads: without a streaming cap this never
        // ends (the test would time out); with it the client hangs up after 1 MiB.
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        while s.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let fetched = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        document(&format!("http://{addr}/big"), None, &lenient()),
    )
    .await
    .expect("the fetch stops by itself");
    assert!(matches!(fetched, Err(SourceError::TooLarge)), "{fetched:?}");
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_before_reading() {
    let addr = server(|mut s| async move {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            MAX_DOCUMENT_BYTES + 1
        );
        let _ = s.write_all(head.as_bytes()).await;
    })
    .await;
    let fetched = document(&format!("http://{addr}/big"), None, &lenient()).await;
    assert!(matches!(fetched, Err(SourceError::TooLarge)), "{fetched:?}");
}

#[tokio::test]
async fn the_default_policy_refuses_before_connecting() {
    // A server that would answer, to show that the refusals are not connection failures.
    let addr = server(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .await;
    })
    .await;
    let p = SourcePolicy::default();
    for url in [
        format!("http://{addr}/x.json"),
        "http://example.com/x.json".to_string(),
        format!("https://{addr}/x.json"),
        "https://127.0.0.1:1/x".to_string(),
        "https://[::1]/x".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
    ] {
        match document(&url, None, &p).await {
            Err(SourceError::Refused { url: named, .. }) => assert_eq!(named, url),
            other => panic!("{url}: {other:?}"),
        }
    }
    // Only plain http is refused when private networks are allowed: the loopback server
    // itself is then reachable over http once that is allowed too.
    let private_only = SourcePolicy {
        allow_private_networks: true,
        ..SourcePolicy::default()
    };
    assert!(matches!(
        document(&format!("http://{addr}/x.json"), None, &private_only).await,
        Err(SourceError::Refused { .. })
    ));
}
