//! Real HTTPS: a rustls listener in the process, as an app that terminates TLS itself runs,
//! and a real client over HTTP/1.1 and HTTP/2. With the default settings the session
//! cookie is `Secure`, whatever the request says about its scheme.

mod common;

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, Request, Response, StatusCode};
use common::{keys, routes, WELCOME};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use sessio::{MemoryStore, SessionLayer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A self-signed certificate for `localhost`, made for this run.
struct Certificate {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn certificate() -> Certificate {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Certificate {
        cert: generated.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()),
    }
}

/// Serves the test routes behind a default `SessionLayer` over TLS (HTTP/1.1 or HTTP/2, as
/// the client's ALPN asks) and returns the port.
async fn serve(certificate: &Certificate) -> u16 {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.cert.clone()],
            PrivateKeyDer::Pkcs8(certificate.key.clone_key()),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let app = routes().layer(SessionLayer::new(MemoryStore::new(), keys()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let tls = acceptor.accept(tcp).await.unwrap();
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await
                    .unwrap();
            });
        }
    });
    port
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    Http1,
    Http2,
}

/// Sends one request over a new TLS connection speaking `protocol`, and checks that TLS
/// negotiated it.
async fn send(
    certificate: &Certificate,
    port: u16,
    protocol: Protocol,
    request: Request<Empty<Bytes>>,
) -> (Response<Incoming>, String) {
    let mut roots = RootCertStore::empty();
    roots.add(certificate.cert.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![match protocol {
        Protocol::Http1 => b"http/1.1".to_vec(),
        Protocol::Http2 => b"h2".to_vec(),
    }];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let io = TokioIo::new(tls);
    let mut response = match protocol {
        Protocol::Http1 => {
            assert_eq!(negotiated.as_deref(), Some(&b"http/1.1"[..]));
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        }
        Protocol::Http2 => {
            assert_eq!(negotiated.as_deref(), Some(&b"h2"[..]));
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        }
    };
    let body = response.body_mut().collect().await.unwrap().to_bytes();
    (response, String::from_utf8(body.to_vec()).unwrap())
}

fn request(protocol: Protocol, uri: &str, cookie: Option<&str>) -> Request<Empty<Bytes>> {
    let mut request = Request::get(uri);
    if protocol == Protocol::Http1 {
        request = request.header(header::HOST, "localhost");
    }
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Empty::new()).unwrap()
}

#[tokio::test]
async fn cookies_set_over_tls_are_secure_on_http1_and_http2() {
    let certificate = certificate();
    let port = serve(&certificate).await;
    // HTTP/1.1 carries no scheme at all (an origin-form target); HTTP/2 carries the
    // client's own `:scheme`, which the layer must not believe either way.
    for (protocol, uri) in [
        (Protocol::Http1, "/".to_owned()),
        (Protocol::Http2, format!("https://localhost:{port}/")),
        (Protocol::Http2, format!("http://localhost:{port}/")),
    ] {
        let context = format!("{protocol:?} {uri}");
        let (response, body) =
            send(&certificate, port, protocol, request(protocol, &uri, None)).await;
        assert_eq!(response.status(), StatusCode::OK, "{context}");
        assert_eq!(body, WELCOME, "{context}");
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let attributes: Vec<&str> = set_cookie.split("; ").skip(1).collect();
        assert!(attributes.contains(&"Secure"), "{context}: {set_cookie}");
        assert!(attributes.contains(&"HttpOnly"), "{context}: {set_cookie}");
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "no-store",
            "{context}"
        );

        // The browser sends it back over the same kind of connection.
        let pair = set_cookie.split(';').next().unwrap();
        let (again, body) = send(
            &certificate,
            port,
            protocol,
            request(protocol, &uri, Some(pair)),
        )
        .await;
        assert_eq!(again.status(), StatusCode::OK, "{context}");
        assert_eq!(body, "Has visitado esta página 2 veces", "{context}");
        assert!(
            again.headers().get(header::SET_COOKIE).is_none(),
            "{context}"
        );
        assert_eq!(again.headers()[header::VARY], "cookie", "{context}");
    }
}
