//! Medians over rounds, ratios, target checks, and the Markdown report.

use std::fmt::Write as _;

use crate::driver::{Cell, Figures, Options, RedisFigures};
use crate::scenario::Route;
use crate::server::Library;
use crate::server::StoreKind;
use crate::stats::{median, range};
use crate::{Scenario, Server};

/// One server on one scenario, over all rounds.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The server.
    pub server: Server,
    /// The scenario.
    pub scenario: Scenario,
    /// Rounds that produced figures.
    pub rounds: usize,
    /// Medians over those rounds (`None` when none did).
    pub median: Option<Figures>,
    /// For ours, against the bare framework of the same round.
    pub vs_bare: Option<Ratios>,
    /// For ours, against the peer on the same framework and kind of store.
    pub vs_peer: Option<Ratios>,
    /// For a server with a [floor](Library::Floor) (a Redis-backed session
    /// library's, ours or a peer's, and our default encrypted cookie's),
    /// against it: how close it comes to the least any such session does.
    pub vs_floor: Option<Ratios>,
    /// Why rounds failed, deduplicated.
    pub failures: Vec<String>,
}

/// Ours compared with another server: medians over rounds of the ratio
/// within each round, so that drift between rounds cancels out.
#[derive(Clone, Copy, Debug)]
pub struct Ratios {
    /// Our req/s ÷ theirs: what a client saw.
    pub throughput: f64,
    /// Their server CPU time per request ÷ ours: requests per core-second,
    /// which is what throughput would be if each server had its core to
    /// itself. On a machine shared with other work this is the steadier
    /// figure, and the one the targets are checked on.
    pub capacity: f64,
    /// The lowest and highest per-round [`capacity`](Ratios::capacity):
    /// the run-to-run scatter, against which a change between two runs,
    /// or a median near a target, is to be read.
    pub capacity_range: (f64, f64),
    /// Their Redis or Postgres CPU time per request ÷ ours, when both
    /// servers use one: how many more requests the same database serves
    /// for ours.
    pub store_capacity: Option<f64>,
    /// Their server and database CPU time per request together ÷ ours,
    /// when both servers use a database: requests per core-second of the
    /// whole machine that serves them, the load generator left out.
    pub machine_capacity: Option<f64>,
}

/// Summarizes `cells` for every server and scenario of `options`.
#[must_use]
pub fn summarize(cells: &[Cell], options: &Options) -> Vec<Summary> {
    let figures = |server: Server, scenario: Scenario, round: usize| {
        cells
            .iter()
            .find(|c| c.server == server && c.scenario == scenario && c.round == round)
            .and_then(|c| c.outcome.as_ref().ok())
    };
    let ratio_to = |server: Server, other: Option<Server>, scenario: Scenario| {
        let other = other.filter(|o| options.servers.contains(o))?;
        let pairs: Vec<(&Figures, &Figures)> = (0..options.rounds_of(scenario))
            .filter_map(|round| {
                Some((
                    figures(server, scenario, round)?,
                    figures(other, scenario, round)?,
                ))
            })
            .collect();
        let throughput: Vec<f64> = pairs
            .iter()
            .map(|(ours, theirs)| ours.requests_per_second / theirs.requests_per_second)
            .collect();
        let capacity: Vec<f64> = pairs
            .iter()
            .map(|(ours, theirs)| theirs.server_cpu_us / ours.server_cpu_us)
            .collect();
        // A route that sends the database nothing leaves only noise to
        // divide.
        let database_cpu = |figures: &Figures| {
            figures
                .redis
                .as_ref()
                .map(|database| database.cpu_us)
                .filter(|&cpu| cpu >= 0.1)
        };
        let store_capacity: Vec<f64> = pairs
            .iter()
            .filter_map(|(ours, theirs)| Some(database_cpu(theirs)? / database_cpu(ours)?))
            .collect();
        let machine_capacity: Vec<f64> = pairs
            .iter()
            .filter_map(|(ours, theirs)| {
                Some(
                    (theirs.server_cpu_us + database_cpu(theirs)?)
                        / (ours.server_cpu_us + database_cpu(ours)?),
                )
            })
            .collect();
        Some(Ratios {
            throughput: median(&throughput)?,
            capacity: median(&capacity)?,
            capacity_range: range(&capacity)?,
            store_capacity: median(&store_capacity),
            machine_capacity: median(&machine_capacity),
        })
    };

    let mut summaries = Vec::new();
    for &scenario in &options.scenarios {
        for &server in &options.servers {
            let ok: Vec<&Figures> = (0..options.rounds_of(scenario))
                .filter_map(|round| figures(server, scenario, round))
                .collect();
            let mut failures: Vec<String> = cells
                .iter()
                .filter(|c| c.server == server && c.scenario == scenario)
                .filter_map(|c| c.outcome.as_ref().err().cloned())
                .collect();
            failures.dedup();
            let ours = server.library() == Library::Ours;
            summaries.push(Summary {
                server,
                scenario,
                rounds: ok.len(),
                median: median_figures(&ok),
                vs_bare: ours
                    .then(|| ratio_to(server, Some(server.bare()), scenario))
                    .flatten(),
                vs_peer: ours
                    .then(|| ratio_to(server, server.peer(), scenario))
                    .flatten(),
                vs_floor: ratio_to(server, server.floor(), scenario),
                failures,
            });
        }
    }
    summaries
}

fn median_figures(rounds: &[&Figures]) -> Option<Figures> {
    let of =
        |field: fn(&Figures) -> f64| median(&rounds.iter().map(|f| field(f)).collect::<Vec<_>>());
    Some(Figures {
        requests_per_second: of(|f| f.requests_per_second)?,
        p50_us: of(|f| f.p50_us)?,
        p99_us: of(|f| f.p99_us)?,
        server_cpu_us: of(|f| f.server_cpu_us)?,
        server_cpu_share: of(|f| f.server_cpu_share)?,
        client_cpu_us: of(|f| f.client_cpu_us)?,
        redis: median_redis(rounds),
    })
}

/// Per command, the median over rounds of its calls per request.
fn median_redis(rounds: &[&Figures]) -> Option<RedisFigures> {
    let redis: Vec<&RedisFigures> = rounds.iter().filter_map(|f| f.redis.as_ref()).collect();
    let mut names: Vec<&str> = redis
        .iter()
        .flat_map(|r| r.commands.iter().map(|(name, _)| name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let commands = names
        .into_iter()
        .filter_map(|name| {
            let calls: Vec<f64> = redis
                .iter()
                .map(|r| {
                    r.commands
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(0.0, |(_, calls)| *calls)
                })
                .collect();
            Some((name.to_owned(), median(&calls)?))
        })
        .collect();
    Some(RedisFigures {
        commands,
        cpu_us: median(&redis.iter().map(|r| r.cpu_us).collect::<Vec<_>>())?,
    })
}

/// A target of the benchmark issue, checked on one summary.
#[derive(Clone, Debug)]
pub struct TargetCheck {
    /// What was required, e.g. `axum-ours-cookie / axum-bare >= 0.97 on untouched`.
    pub description: String,
    /// The measured capacity ratio (see [`Ratios::capacity`]).
    pub measured: f64,
    /// The lowest and highest per-round capacity ratio.
    pub range: (f64, f64),
    /// The throughput ratio, for comparison.
    pub throughput: f64,
    /// Whether it was met, by the median.
    pub met: bool,
    /// For a target against a Redis-backed peer, the target restated
    /// against the [floor](Library::Floor): the minimum times the peer's own
    /// ratio to the floor in the same scenario. Above 1.0, the target asks
    /// for more than one `GET` per request allows.
    pub vs_floor: Option<f64>,
}

/// The untouched route may cost at most 3% of the bare framework's
/// throughput.
pub const UNTOUCHED_VS_BARE: f64 = 0.97;
/// Reading an encrypted-cookie session may cost at most 15%.
pub const COOKIE_READ_VS_BARE: f64 = 0.85;
/// Every scenario: at least 1.2 times the peer's throughput.
pub const VS_PEER: f64 = 1.2;
/// The distinct-session scenario on which the encrypted cookie store's
/// targets below are checked: reads over 5,000 sessions.
pub const DISTINCT_TARGET: Scenario = Scenario::distinct(Route::ReadKey, 5_000);
/// Reading encrypted-cookie sessions over [`DISTINCT_TARGET`]'s distinct
/// sessions may cost at most 15% of the bare framework's throughput...
pub const DISTINCT_COOKIE_READ_VS_BARE: f64 = 0.85;
/// ... and must reach 1.3 times actix-session's cookie store.
pub const DISTINCT_COOKIE_READ_VS_PEER: f64 = 1.3;

/// Checks the targets against `summaries`.
#[must_use]
pub fn check_targets(summaries: &[Summary]) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let floor_ratio = |server: Server, scenario: Scenario| {
        summaries
            .iter()
            .find(|s| s.server == server && s.scenario == scenario)
            .and_then(|s| s.vs_floor)
            .map(|r| r.capacity)
    };
    for summary in summaries {
        let (server, scenario) = (summary.server, summary.scenario);
        let mut check = |against: Server, ratio: Option<Ratios>, minimum: f64| {
            if let Some(Ratios {
                capacity: measured,
                capacity_range: range,
                throughput,
                ..
            }) = ratio
            {
                checks.push(TargetCheck {
                    description: format!("{server} / {against} >= {minimum:.2} on {scenario}"),
                    measured,
                    range,
                    throughput,
                    met: measured >= minimum,
                    vs_floor: floor_ratio(against, scenario).map(|peer| minimum * peer),
                });
            }
        };
        let cookie = server.store() == StoreKind::Cookie;
        match (scenario.route, scenario.sessions) {
            (Route::Untouched, None) => check(server.bare(), summary.vs_bare, UNTOUCHED_VS_BARE),
            (Route::ReadKey, None) if cookie => {
                check(server.bare(), summary.vs_bare, COOKIE_READ_VS_BARE);
            }
            _ if scenario == DISTINCT_TARGET && cookie => {
                check(server.bare(), summary.vs_bare, DISTINCT_COOKIE_READ_VS_BARE);
            }
            _ => {}
        }
        match server.peer() {
            Some(peer) if scenario == DISTINCT_TARGET && cookie => {
                check(peer, summary.vs_peer, DISTINCT_COOKIE_READ_VS_PEER);
            }
            // The 1.2 applies to the single-session scenarios.
            Some(peer) if scenario.sessions.is_none() => check(peer, summary.vs_peer, VS_PEER),
            _ => {}
        }
    }
    checks
}

/// The CPU model and core count, for the report.
#[must_use]
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    // Counted from /proc/cpuinfo, not from this process's affinity, which
    // pinning has narrowed to one core.
    let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |info| {
        info.lines()
            .filter(|line| line.starts_with("processor"))
            .count()
    });
    format!("{model}, {cores} cores")
}

/// The table a reader choosing a library looks at first: for each of ours,
/// on every scenario, requests per core-second against the bare framework
/// and against the peer, and the database's CPU per request against the
/// peer's; for every server with a floor (Redis-backed session libraries,
/// ours and the peers, and our encrypted cookie), the same against it.
fn summary_table(summaries: &[Summary], options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n#### Summary: ours ÷ bare and ours ÷ peer, and sessions ÷ their floor \
         (requests per core-second; for Redis and Postgres, also the \
         database's CPU per request, and the server's and the database's together, \
         theirs ÷ ours)\n"
    );
    let _ = write!(out, "| server | against |");
    for scenario in &options.scenarios {
        let _ = write!(out, " `{scenario}` |");
    }
    let _ = write!(out, "\n|---|---|");
    for _ in &options.scenarios {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    let cell = |server: Server, scenario: Scenario, pick: &dyn Fn(&Summary) -> Option<f64>| {
        summaries
            .iter()
            .find(|s| s.server == server && s.scenario == scenario)
            .and_then(pick)
            .map_or_else(String::new, |ratio| format!("{ratio:.2}"))
    };
    let mut row = |server: Server, against: String, pick: &dyn Fn(&Summary) -> Option<f64>| {
        let cells: Vec<String> = options
            .scenarios
            .iter()
            .map(|&scenario| cell(server, scenario, pick))
            .collect();
        if cells.iter().any(|c| !c.is_empty()) {
            let _ = writeln!(out, "| {server} | {against} | {} |", cells.join(" | "));
        }
    };
    for &server in &options.servers {
        if server.library() == Library::Ours {
            row(server, server.bare().to_string(), &|s| {
                s.vs_bare.map(|r| r.capacity)
            });
            if let Some(peer) = server.peer() {
                row(server, peer.to_string(), &|s| s.vs_peer.map(|r| r.capacity));
                row(server, format!("{peer}, database CPU"), &|s| {
                    s.vs_peer.and_then(|r| r.store_capacity)
                });
                row(server, format!("{peer}, server and database CPU"), &|s| {
                    s.vs_peer.and_then(|r| r.machine_capacity)
                });
            }
        }
        if let Some(floor) = server.floor() {
            row(server, floor.to_string(), &|s| {
                s.vs_floor.map(|r| r.capacity)
            });
            row(server, format!("{floor}, database CPU"), &|s| {
                s.vs_floor.and_then(|r| r.store_capacity)
            });
            row(server, format!("{floor}, server and database CPU"), &|s| {
                s.vs_floor.and_then(|r| r.machine_capacity)
            });
        }
    }
    out
}

/// A capacity ratio for a scenario's table, with the range of its rounds
/// when they differ: `0.85 (0.80–0.89)`.
fn capacity_with_range(ratios: Option<Ratios>) -> String {
    ratios.map_or_else(String::new, |r| {
        let (low, high) = r.capacity_range;
        if format!("{low:.2}") == format!("{high:.2}") {
            format!("{:.2}", r.capacity)
        } else {
            format!("{:.2} ({low:.2}–{high:.2})", r.capacity)
        }
    })
}

/// The report in Markdown: settings, one table per scenario, the target
/// checks and any failures.
#[must_use]
pub fn markdown(summaries: &[Summary], options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {}.", machine());
    let _ = writeln!(
        out,
        "{} rounds; per scenario {} connections, {:.2} s warm-up, {:.2} s or {} requests measured; {}.",
        options.rounds,
        options.connections,
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64(),
        options.max_requests,
        if options.pin {
            "server pinned to core 0, load generator, redis-server and Postgres to core 1"
        } else {
            "unpinned"
        }
    );
    let _ = writeln!(
        out,
        "Medians over rounds. Ratios are medians of per-round ratios: \"req/s\" divides \
         throughputs, \"CPU\" divides server CPU time per request the other way round \
         (requests per core-second); targets are checked on the CPU ratio. In the \
         scenarios' tables, a CPU ratio is followed by the lowest and highest of its \
         rounds: the scatter a difference between two runs is to be read against."
    );
    if options.scenarios.iter().any(|s| s.sessions.is_some()) {
        let _ = writeln!(
            out,
            "Scenarios `route@N` rotate through N distinct sessions (each connection \
             cycles through its own share of them, in order): {} rounds, {:.2} s warm-up \
             after the sessions are set up, {:.2} s measured.",
            options.distinct_rounds.min(options.rounds),
            options.distinct_warmup.as_secs_f64(),
            options.distinct_duration.as_secs_f64(),
        );
    }
    out.push_str(&summary_table(summaries, options));
    for &scenario in &options.scenarios {
        let sessions = match scenario.sessions {
            None => "one session per connection".to_owned(),
            Some(n) => format!("{n} distinct sessions in rotation"),
        };
        let _ = writeln!(
            out,
            "\n#### `{scenario}` ({}, {sessions})\n",
            scenario.path()
        );
        let _ = writeln!(
            out,
            "| server | req/s | p50 µs | p99 µs | server CPU µs/req | server core busy | ours / bare req/s | ours / bare CPU | ours / peer req/s | ours / peer CPU | Redis or Postgres CPU µs/req | Redis calls/req |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for summary in summaries.iter().filter(|s| s.scenario == scenario) {
            let ratio = |r: Option<f64>| r.map_or_else(String::new, |r| format!("{r:.2}"));
            let (bare, peer) = (summary.vs_bare, summary.vs_peer);
            match &summary.median {
                Some(f) => {
                    let _ = writeln!(
                        out,
                        "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0}% | {} | {} | {} | {} | {} | {} |",
                        summary.server,
                        f.requests_per_second,
                        f.p50_us,
                        f.p99_us,
                        f.server_cpu_us,
                        f.server_cpu_share * 100.0,
                        ratio(bare.map(|r| r.throughput)),
                        capacity_with_range(bare),
                        ratio(peer.map(|r| r.throughput)),
                        capacity_with_range(peer),
                        f.redis
                            .as_ref()
                            .map_or_else(String::new, |r| format!("{:.1}", r.cpu_us)),
                        f.redis.as_ref().map_or_else(String::new, |r| {
                            if r.commands.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "{:.2} ({})",
                                    r.total_commands(),
                                    RedisFigures::breakdown(r)
                                )
                            }
                        }),
                    );
                }
                None => {
                    let _ = writeln!(out, "| {} | failed | | | | | | | | | | |", summary.server);
                }
            }
        }
    }
    let checks = check_targets(summaries);
    if !checks.is_empty() {
        let _ = writeln!(out, "\n#### Targets\n");
        for check in &checks {
            let floor = check.vs_floor.map_or_else(String::new, |target| {
                format!("; the target is {target:.2}× the Redis floor")
            });
            let _ = writeln!(
                out,
                "- {} {}: {:.2} (rounds {:.2} to {:.2}; req/s ratio {:.2}{floor})",
                if check.met { "met" } else { "MISSED" },
                check.description,
                check.measured,
                check.range.0,
                check.range.1,
                check.throughput
            );
        }
    }
    let failures: Vec<&Summary> = summaries
        .iter()
        .filter(|s| !s.failures.is_empty())
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\n#### Failures\n");
        for summary in failures {
            for failure in &summary.failures {
                let _ = writeln!(out, "- {} {}: {failure}", summary.server, summary.scenario);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn options(scenario: Scenario) -> Options {
        Options {
            rounds: 3,
            connections: 32,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            max_requests: 1_000,
            distinct_rounds: 3,
            distinct_warmup: Duration::from_secs(1),
            distinct_duration: Duration::from_secs(2),
            servers: vec![Server::AxumBare, Server::AxumOursCookie],
            scenarios: vec![scenario],
            server_bin: PathBuf::from("bench-server"),
            pin: false,
        }
    }

    #[test]
    fn redis_backed_sessions_are_measured_against_the_floor() {
        let scenario = Scenario::single(Route::ReadKey);
        let mut options = options(scenario);
        options.servers = vec![
            Server::AxumOursRedis,
            Server::AxumTowerSessionsRedis,
            Server::AxumRedisFloor,
        ];
        // The floor at 10 µs a request, tower-sessions at 12.5, ours at 11.
        let cells: Vec<Cell> = (0..3)
            .flat_map(|round| {
                [
                    cell(Server::AxumRedisFloor, scenario, round, 10.0),
                    cell(Server::AxumTowerSessionsRedis, scenario, round, 12.5),
                    cell(Server::AxumOursRedis, scenario, round, 11.0),
                ]
            })
            .collect();
        let summaries = summarize(&cells, &options);
        let floor_ratio = |server| {
            summaries
                .iter()
                .find(|s| s.server == server)
                .and_then(|s| s.vs_floor)
                .map(|r| r.capacity)
        };
        assert_eq!(floor_ratio(Server::AxumTowerSessionsRedis), Some(0.8));
        assert!((floor_ratio(Server::AxumOursRedis).unwrap() - 10.0 / 11.0).abs() < 1e-9);
        assert_eq!(floor_ratio(Server::AxumRedisFloor), None);

        let check = check_targets(&summaries)
            .into_iter()
            .find(|c| c.description.contains("axum-tower-sessions-redis"))
            .unwrap();
        // 1.2 × tower-sessions, which reaches 0.8 of the floor.
        assert!((check.vs_floor.unwrap() - 0.96).abs() < 1e-9);

        let report = markdown(&summaries, &options);
        assert!(
            report.contains("| axum-tower-sessions-redis | axum-redis-floor | 0.80 |"),
            "{report}"
        );
        assert!(
            report.contains("| axum-ours-redis | axum-redis-floor | 0.91 |"),
            "{report}"
        );
        assert!(
            report.contains("; the target is 0.96× the Redis floor)"),
            "{report}"
        );
    }

    fn cell(server: Server, scenario: Scenario, round: usize, cpu_us: f64) -> Cell {
        Cell {
            server,
            scenario,
            round,
            outcome: Ok(Figures {
                requests_per_second: 100_000.0,
                p50_us: 200.0,
                p99_us: 300.0,
                server_cpu_us: cpu_us,
                server_cpu_share: 1.0,
                client_cpu_us: 5.0,
                redis: None,
            }),
        }
    }

    #[test]
    fn the_whole_machine_counts_the_server_and_the_database() {
        let scenario = Scenario::single(Route::ReadKey);
        let mut options = options(scenario);
        options.servers = vec![Server::AxumOursRedis, Server::AxumTowerSessionsRedis];
        let with_database = |server, round, server_cpu, database_cpu| {
            let mut cell = cell(server, scenario, round, server_cpu);
            if let Ok(figures) = &mut cell.outcome {
                figures.redis = Some(RedisFigures {
                    commands: vec![("get".to_owned(), 1.0)],
                    cpu_us: database_cpu,
                });
            }
            cell
        };
        // Ours: 11 µs of the server's CPU and 4 of Redis's a request;
        // the peer's: 12.5 and 2.5. Per server, ours serves more; per
        // machine, as many.
        let cells: Vec<Cell> = (0..3)
            .flat_map(|round| {
                [
                    with_database(Server::AxumOursRedis, round, 11.0, 4.0),
                    with_database(Server::AxumTowerSessionsRedis, round, 12.5, 2.5),
                ]
            })
            .collect();
        let summaries = summarize(&cells, &options);
        let ratios = summaries
            .iter()
            .find(|s| s.server == Server::AxumOursRedis)
            .and_then(|s| s.vs_peer)
            .unwrap();
        assert!((ratios.capacity - 12.5 / 11.0).abs() < 1e-9);
        assert_eq!(ratios.store_capacity, Some(0.625));
        assert_eq!(ratios.machine_capacity, Some(1.0));

        let report = markdown(&summaries, &options);
        assert!(
            report.contains(
                "| axum-ours-redis | axum-tower-sessions-redis, server and database CPU | 1.00 |"
            ),
            "{report}"
        );
    }

    #[test]
    fn ratios_carry_the_range_of_their_rounds() {
        let scenario = DISTINCT_TARGET;
        let options = options(scenario);
        // Bare at 8 µs a request in every round; ours at 10, 9 and 8.
        let cells: Vec<Cell> = [10.0, 9.0, 8.0]
            .into_iter()
            .enumerate()
            .flat_map(|(round, ours)| {
                [
                    cell(Server::AxumBare, scenario, round, 8.0),
                    cell(Server::AxumOursCookie, scenario, round, ours),
                ]
            })
            .collect();
        let summaries = summarize(&cells, &options);
        let ours = summaries
            .iter()
            .find(|s| s.server == Server::AxumOursCookie)
            .unwrap();
        let ratios = ours.vs_bare.unwrap();
        assert!((ratios.capacity - 8.0 / 9.0).abs() < 1e-9);
        assert_eq!(ratios.capacity_range, (0.8, 1.0));

        let check = check_targets(&summaries)
            .into_iter()
            .find(|c| c.description.contains("axum-bare"))
            .unwrap();
        assert!(check.met, "the median, 0.89, is the verdict");
        assert_eq!(check.range, (0.8, 1.0));

        let report = markdown(&summaries, &options);
        assert!(report.contains("| 0.89 (0.80–1.00) |"), "{report}");
        assert!(report.contains(": 0.89 (rounds 0.80 to 1.00;"), "{report}");
    }

    #[test]
    fn rounds_that_agree_show_no_range() {
        let scenario = Scenario::single(Route::ReadKey);
        let options = options(scenario);
        let cells: Vec<Cell> = (0..3)
            .flat_map(|round| {
                [
                    cell(Server::AxumBare, scenario, round, 8.0),
                    cell(Server::AxumOursCookie, scenario, round, 10.0),
                ]
            })
            .collect();
        let report = markdown(&summarize(&cells, &options), &options);
        assert!(report.contains("| 0.80 |"), "{report}");
        assert!(!report.contains("0.80 (0.80"), "{report}");
    }
}
