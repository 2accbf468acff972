//! What the Redis store's `Durability::Replicas` costs: the same load,
//! saves answered once the master has them against saves answered once a
//! replica acknowledged them (`WAIT 1`).
//!
//! ```text
//! bench-durability [--seconds N] [--rounds N] [--tasks N]
//! ```
//!
//! A master and one replica of it (session-testing, on loopback); `--tasks`
//! concurrent tasks on one thread, each with its own session, load it,
//! increment a counter and save it, through the session lifecycle (as a
//! request does), for `--seconds` per store and round, the two settings in
//! alternating order. Reported per setting: saves per second, the mean
//! time of one load-and-save, and the client's CPU time per operation;
//! and the ratios, durable / not (medians over the rounds).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use session_bench::cpu;
use session_bench::stats::median;
use session_core::{SessionConfig, SessionManager};
use session_redis::{Durability, RedisStore};
use session_testing::RedisServer;

/// Saves with and without waiting for a replica.
#[derive(Parser)]
struct Args {
    /// Seconds of load per setting and round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds; medians are printed.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent tasks, each with its own session.
    #[arg(long, default_value_t = 32)]
    tasks: usize,
}

/// One round's figures for one setting.
struct Figures {
    per_second: f64,
    mean_latency_us: f64,
    cpu_us: f64,
}

/// Runs the counter load on `manager` for `duration`.
async fn measure(
    manager: &SessionManager,
    cookies: &[String],
    duration: Duration,
) -> Result<Figures, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let busy_ns = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu::own_cpu_time();
    let started = Instant::now();
    let tasks: Vec<_> = cookies
        .iter()
        .map(|cookie| {
            let (manager, cookie) = (manager.clone(), cookie.clone());
            let (stop, done, busy_ns) = (stop.clone(), done.clone(), busy_ns.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let request = manager.request();
                    let session = request
                        .session([cookie.as_bytes()])
                        .await
                        .map_err(|e| e.to_string())?;
                    let count = session.get::<u64>("counter").map_err(|e| e.to_string())?;
                    session
                        .insert("counter", &(count.unwrap_or(0) + 1))
                        .map_err(|e| e.to_string())?;
                    request.save_changes().await.map_err(|e| e.to_string())?;
                    busy_ns.fetch_add(
                        u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    let cpu = cpu::own_cpu_time() - cpu_before;
    let operations = done.load(Ordering::Relaxed).max(1) as f64;
    Ok(Figures {
        per_second: operations / elapsed.as_secs_f64(),
        mean_latency_us: busy_ns.load(Ordering::Relaxed) as f64 / operations / 1000.0,
        cpu_us: cpu.as_nanos() as f64 / operations / 1000.0,
    })
}

/// A manager on `url` with `durability`, and one session per task.
async fn setup(
    url: &str,
    durability: Durability,
    tasks: usize,
) -> Result<(SessionManager, Vec<String>), String> {
    let store = RedisStore::builder()
        .durability(durability)
        .connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let manager = SessionManager::new(store, SessionConfig::default());
    let mut cookies = Vec::new();
    for _ in 0..tasks {
        let request = manager.request();
        request
            .session([])
            .await
            .map_err(|e| e.to_string())?
            .insert("counter", &0)
            .map_err(|e| e.to_string())?;
        let set = request.save_changes().await.map_err(|e| e.to_string())?;
        let pair = set
            .first()
            .and_then(|c| c.split(';').next())
            .ok_or("no cookie")?;
        cookies.push(pair.to_owned());
    }
    Ok((manager, cookies))
}

async fn run(args: &Args) -> Result<(), String> {
    let master = RedisServer::start();
    let replica = RedisServer::builder().replica_of(master.port()).start();
    replica.wait_for_sync(Duration::from_secs(20));
    let url = master.url();
    let settings = [
        ("answered by the master", Durability::Master),
        (
            "WAIT 1 replica",
            Durability::Replicas {
                count: 1,
                timeout: Duration::from_millis(500),
            },
        ),
    ];
    let mut setups = Vec::new();
    for (_, durability) in settings {
        setups.push(setup(&url, durability, args.tasks).await?);
    }
    let duration = Duration::from_secs(args.seconds.max(1));
    let mut figures: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        for index in [round % 2, 1 - round % 2] {
            let (manager, cookies) = &setups[index];
            let f = measure(manager, cookies, duration).await?;
            eprintln!(
                "round {}/{} {:<24} {:>8.0} saves/s, {:>7.1} µs each, {:>5.2} µs CPU",
                round + 1,
                args.rounds,
                settings[index].0,
                f.per_second,
                f.mean_latency_us,
                f.cpu_us
            );
            figures[index].push(f);
        }
    }
    let med = |index: usize, pick: fn(&Figures) -> f64| {
        median(&figures[index].iter().map(pick).collect::<Vec<_>>()).unwrap_or(0.0)
    };
    let ratios = |pick: fn(&Figures) -> f64| {
        let values: Vec<f64> = figures[1]
            .iter()
            .zip(&figures[0])
            .map(|(durable, plain)| pick(durable) / pick(plain))
            .collect();
        median(&values).unwrap_or(0.0)
    };
    println!(
        "{} tasks on one thread, load + increment + save through the session lifecycle; \
         master and one replica on loopback; median of {} rounds of {} s.\n",
        args.tasks, args.rounds, args.seconds
    );
    println!("| setting | saves/s | µs per load + save | client CPU µs per operation |");
    println!("|---|---:|---:|---:|");
    for (index, (name, _)) in settings.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.1} | {:.2} |",
            med(index, |f| f.per_second),
            med(index, |f| f.mean_latency_us),
            med(index, |f| f.cpu_us)
        );
    }
    println!(
        "| WAIT / master | {:.2} | {:.2} | {:.2} |",
        ratios(|f| f.per_second),
        ratios(|f| f.mean_latency_us),
        ratios(|f| f.cpu_us)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    session_bench::run_on_one_thread("bench-durability", run(&args))
}
