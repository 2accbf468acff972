//! The Redis stores alone: our `RedisStore` (default hash layout) against
//! tower-sessions-redis-store, each called directly, without HTTP or a
//! framework, on the same fred version and the same redis-server.
//!
//! ```text
//! bench-redis-store [--operations N] [--rounds N] [--tasks N]
//! ```
//!
//! Over HTTP, a Redis-backed request costs the server 15–25 µs, most of it
//! the kernel's TCP work for the client and for Redis, and the shared
//! machine's noise is about as large as the difference between two stores.
//! Here `--tasks` concurrent tasks on one thread (as the HTTP servers run)
//! load a session, or load, change and save it (the counter), and what is
//! reported, in alternating rounds, is the process's CPU time per operation
//! and redis-server's (with the commands it ran per operation, from
//! `INFO commandstats`); redis-server runs on the other core when there are
//! two.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use session_bench::cpu;
use session_bench::driver::{self, RedisFigures, RedisSample};
use session_bench::scenario::{COUNTER_KEY, PAYLOAD_KEY, USER, USER_KEY, payload};
use session_bench::stats::median;
use session_core::{Changes, Create, Record, SessionCookie, SessionStore, Update, Written};
use session_redis::RedisStore;
use session_testing::RedisServer;
use tower_sessions_014::SessionStore as _;
use tower_sessions_014::cookie::time::{Duration as PeerDuration, OffsetDateTime};
use tower_sessions_014::session::{Id, Record as PeerRecord};
use tower_sessions_redis_store::fred::prelude::{Client, ClientLike, Config};

/// Client and redis-server CPU per operation of the two Redis stores,
/// called directly.
#[derive(Parser)]
struct Args {
    /// Operations per store, workload and round.
    #[arg(long, default_value_t = 100_000)]
    operations: u32,
    /// Rounds; medians are printed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrent tasks, each with its own session.
    #[arg(long, default_value_t = 32)]
    tasks: u32,
}

/// What each task does, over and over.
#[derive(Clone, Copy)]
enum Workload {
    /// Loads a session holding `user`.
    Read,
    /// Loads a session holding `user` and a 1 KB `payload`.
    ReadLarge,
    /// Loads a session, increments its counter and saves it.
    Counter,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Read, Workload::ReadLarge, Workload::Counter];

    fn name(self) -> &'static str {
        match self {
            Workload::Read => "load",
            Workload::ReadLarge => "load 1 KB",
            Workload::Counter => "load + save",
        }
    }
}

/// One of the two stores, with one session per task.
#[derive(Clone)]
enum Store {
    Ours(Arc<RedisStore>, Arc<[String]>),
    Peer(
        Arc<tower_sessions_redis_store::RedisStore<Client>>,
        Arc<[Id]>,
    ),
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Ours(..) => "session-redis",
            Store::Peer(..) => "tower-sessions-redis-store",
        }
    }

    async fn ours(url: &str, workload: Workload, tasks: u32) -> Result<Self, String> {
        let store = RedisStore::from_url(url).await.map_err(|e| e.to_string())?;
        let now = SystemTime::now();
        let mut ids = Vec::new();
        for _ in 0..tasks {
            let mut record = Record::new(now);
            record.expires_at = Some(now + Duration::from_secs(3600));
            let _ = record.data.insert(USER_KEY.into(), USER.into());
            if matches!(workload, Workload::ReadLarge) {
                let _ = record.data.insert(PAYLOAD_KEY.into(), payload().into());
            }
            let record = Arc::new(record);
            let id = store
                .create(Create::new("session", &record, now))
                .await
                .map_err(|e| e.to_string())?;
            ids.push(id);
        }
        Ok(Store::Ours(Arc::new(store), ids.into()))
    }

    async fn peer(url: &str, workload: Workload, tasks: u32) -> Result<Self, String> {
        // One connection, as ours: fred pipelines concurrent commands on it.
        let config = Config::from_url(url).map_err(|e| e.to_string())?;
        let client = Client::new(config, None, None, None);
        client.init().await.map_err(|e| e.to_string())?;
        let store = tower_sessions_redis_store::RedisStore::new(client);
        let mut ids = Vec::new();
        for _ in 0..tasks {
            let mut record = PeerRecord {
                id: Id::default(),
                data: Default::default(),
                expiry_date: OffsetDateTime::now_utc() + PeerDuration::hours(1),
            };
            let _ = record.data.insert(USER_KEY.into(), USER.into());
            if matches!(workload, Workload::ReadLarge) {
                let _ = record.data.insert(PAYLOAD_KEY.into(), payload().into());
            }
            store.create(&mut record).await.map_err(|e| e.to_string())?;
            ids.push(record.id);
        }
        Ok(Store::Peer(Arc::new(store), ids.into()))
    }

    /// Task `task`'s operation: a load, or a load, an increment and a save.
    async fn operate(&self, task: usize, workload: Workload) -> Result<(), String> {
        let counter = matches!(workload, Workload::Counter);
        match self {
            Store::Ours(store, ids) => {
                let id = &ids[task];
                let mut record = store
                    .load(SessionCookie::new("session", id))
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("our session is gone")?;
                std::hint::black_box(record.data.get(USER_KEY));
                if counter {
                    // As a session writes: in place, the record being its
                    // own (the Redis store shares it with nobody).
                    // The deadline stays: with the default rolling
                    // throttle, the lifecycle moves it on a write only once
                    // a minute, so a write is data only.
                    let writable = Arc::make_mut(&mut record);
                    let count = next_count(writable.data.get(COUNTER_KEY));
                    let _ = writable.data.insert(COUNTER_KEY.into(), count);
                    let now = SystemTime::now();
                    let mut changes = Changes::default();
                    changes.record_write(COUNTER_KEY);
                    let cookie = SessionCookie::new("session", id);
                    let update = Update::new(cookie, &record, &changes, now).with_data_only(true);
                    let written = store.update(update).await.map_err(|e| e.to_string())?;
                    if written == Written::Gone {
                        return Err("our session is gone".into());
                    }
                }
            }
            Store::Peer(store, ids) => {
                let mut record = store
                    .load(&ids[task])
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the peer's session is gone")?;
                std::hint::black_box(record.data.get(USER_KEY));
                if counter {
                    let count = next_count(record.data.get(COUNTER_KEY));
                    let _ = record.data.insert(COUNTER_KEY.into(), count);
                    record.expiry_date = OffsetDateTime::now_utc() + PeerDuration::hours(1);
                    store.save(&record).await.map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
}

/// The counter after `current` (absent counts as 0).
fn next_count(current: Option<&serde_json::Value>) -> serde_json::Value {
    (current.and_then(serde_json::Value::as_u64).unwrap_or(0) + 1).into()
}

/// What one measurement of a store gave, per operation.
struct Measured {
    /// This process's CPU time, nanoseconds.
    client_ns: f64,
    /// redis-server's CPU time and commands.
    redis: RedisFigures,
}

/// CPU time per operation of `operations` spread over one task per session
/// of `store`, in this process and in `redis`.
async fn measure(
    store: &Store,
    redis: &RedisServer,
    workload: Workload,
    operations: u32,
) -> Result<Measured, String> {
    let tasks = match store {
        Store::Ours(_, ids) => ids.len(),
        Store::Peer(_, ids) => ids.len(),
    };
    let task_count = u32::try_from(tasks).map_err(|e| e.to_string())?;
    let per_task = operations / task_count;
    let run = |count: u32| {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in 0..count {
                        store.operate(task, workload).await?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        async move {
            for handle in handles {
                handle.await.map_err(|e| e.to_string())??;
            }
            Ok::<_, String>(())
        }
    };
    // Warm-up: a tenth, unmeasured.
    run(per_task / 10).await?;
    let redis_before = RedisSample::take(redis)?;
    let started = cpu::own_cpu_time();
    run(per_task).await?;
    let spent = cpu::own_cpu_time() - started;
    let redis_after = RedisSample::take(redis)?;
    let done = f64::from(per_task * task_count);
    Ok(Measured {
        client_ns: spent.as_nanos() as f64 / done,
        redis: redis_after.since(&redis_before, done),
    })
}

async fn run(args: &Args) -> Result<(), String> {
    let pin = cpu::can_pin();
    let server = driver::start_redis(pin)?;
    let url = server.url();
    if pin {
        cpu::pin(std::process::id(), cpu::SERVER_CORE).map_err(|e| e.to_string())?;
    }
    println!(
        "CPU µs per operation, of this process (the client: in process on one thread, {} tasks) \
         and of redis-server; median of {} rounds of {} operations. `ours / peer`: operations \
         per CPU-second, the median of the rounds' ratios. Commands: per operation, in the \
         last round.\n",
        args.tasks, args.rounds, args.operations
    );
    println!(
        "| workload | client µs, session-redis | client µs, tower-sessions-redis-store | client, ours / peer \
         | Redis µs, session-redis | Redis µs, tower-sessions-redis-store | Redis, ours / peer \
         | commands, session-redis | commands, tower-sessions-redis-store |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---|");
    for workload in Workload::ALL {
        let stores = [
            Store::ours(&url, workload, args.tasks).await?,
            Store::peer(&url, workload, args.tasks).await?,
        ];
        let mut client = [Vec::new(), Vec::new()];
        let mut redis = [Vec::new(), Vec::new()];
        let mut commands = [String::new(), String::new()];
        let (mut client_ratios, mut redis_ratios) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            // Alternating which goes first, so that drift hits both alike.
            for index in [round % 2, 1 - round % 2] {
                let measured = measure(&stores[index], &server, workload, args.operations).await?;
                eprintln!(
                    "round {}/{} {:<27} {:<12} client {:.2} µs, redis {:.2} µs ({})",
                    round + 1,
                    args.rounds,
                    stores[index].name(),
                    workload.name(),
                    measured.client_ns / 1000.0,
                    measured.redis.cpu_us,
                    measured.redis.breakdown()
                );
                client[index].push(measured.client_ns / 1000.0);
                redis[index].push(measured.redis.cpu_us);
                commands[index] = format!(
                    "{:.2} ({})",
                    measured.redis.total_commands(),
                    measured.redis.breakdown()
                );
            }
            client_ratios.push(client[1][round] / client[0][round]);
            redis_ratios.push(redis[1][round] / redis[0][round]);
        }
        let [client_ours, client_peer] = client.map(|samples| median(&samples).unwrap_or(0.0));
        let [redis_ours, redis_peer] = redis.map(|samples| median(&samples).unwrap_or(0.0));
        let [commands_ours, commands_peer] = commands;
        println!(
            "| {} | {client_ours:.2} | {client_peer:.2} | {:.2} | {redis_ours:.2} | {redis_peer:.2} | {:.2} \
             | {commands_ours} | {commands_peer} |",
            workload.name(),
            median(&client_ratios).unwrap_or(0.0),
            median(&redis_ratios).unwrap_or(0.0),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    session_bench::run_on_one_thread("bench-redis-store", run(&args))
}
