//! tokio-echo: the Tokio baseline for Veloq's echo benchmark.
//!
//! A TCP echo server on Tokio's `current_thread` runtime, so it runs on one OS thread
//! like each Veloq shard and the other baselines. Each connection is one task that reads
//! into a 4 KiB buffer and writes back what it read. The server prints
//! `listening on HOST:PORT` once it accepts connections and exits with status 0 on
//! SIGINT or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = concat!(
    "usage: tokio-echo --port P [--host 127.0.0.1]\n",
    "\n",
    "Single-thread Tokio TCP echo server (baseline for Veloq's echo benchmark).\n",
    "  --port P   TCP port to listen on; 0 picks a free port (printed on the ready line)\n",
    "  --host H   IPv4 address to bind (default 127.0.0.1)\n",
    "Prints `listening on HOST:PORT` when ready; exits 0 on SIGINT/SIGTERM.",
);

struct Options {
    host: Ipv4Addr,
    port: u16,
}

enum Parsed {
    Run(Options),
    Help,
}

fn parse_args() -> Result<Parsed, String> {
    let mut host = Ipv4Addr::LOCALHOST;
    let mut port: Option<u16> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Parsed::Help),
            "--port" | "--host" => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("{arg} needs a value"))?;
                if arg == "--port" {
                    port = Some(value.parse().map_err(|_| format!("bad port: {value}"))?);
                } else {
                    host = value.parse().map_err(|_| format!("bad IPv4 address: {value}"))?;
                }
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    let port = port.ok_or_else(|| "--port is required".to_string())?;
    Ok(Parsed::Run(Options { host, port }))
}

async fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // Accept errors such as EMFILE or ECONNABORTED affect one peer, not the server.
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(echo(stream));
                }
            }
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tokio-echo: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tokio-echo: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Same backlog as the C++ servers, so a burst of thousands of connects is not
        // throttled by Tokio's default of 1024.
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((options.host, options.port)))?;
        let listener = socket.listen(4096)?;
        let bound = listener.local_addr()?;
        // println! flushes at the newline only when stdout is a terminal, so flush explicitly.
        {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "listening on {}:{}", bound.ip(), bound.port())?;
            stdout.flush()?;
        }
        serve(listener).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tokio-echo: {error}");
            ExitCode::FAILURE
        }
    }
}
