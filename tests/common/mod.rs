//! Helpers shared by the integration tests.

use std::io::{Read, Write};
use std::net::TcpListener;

/// A one-off HTTP server on 127.0.0.1 that answers successive connections with
/// `responses` (raw HTTP), then stops. Returns the base URL.
pub fn serve(responses: Vec<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let address = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for response in responses {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            // Read the request head; the body (if any) does not matter here.
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => request.push(byte[0]),
                    _ => break,
                }
            }
            stream.write_all(&response).ok();
            stream.flush().ok();
        }
    });
    format!("http://{address}")
}

/// `200 OK` with `body`.
pub fn http_ok(body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}
