//! The coordinator against a real nats-server: permits across processes, the
//! session budget, leadership failover, and workers with a fake shard runner.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardline_gateway::{
    Coordinator, CoordinatorSettings, CoordinatorStatus, IdentifyQueue, RemoteQueue, STATUS_KEY,
    ShardCountSetting, Worker, WorkerSettings,
};
use shardline_harness::NatsServer;
use shardline_wire::Names;
use support::{FakeRunner, Ledger, Process, gateway_info, wait_for};

fn names() -> Names {
    Names::new("discord", "test").unwrap()
}

fn coordinator_settings(id: &str, window: Duration, lease_ttl: Duration) -> CoordinatorSettings {
    CoordinatorSettings {
        id: Some(id.into()),
        shard_count: ShardCountSetting::Fixed(16),
        identify_window: window,
        identify_margin: Some(Duration::from_millis(20)),
        lease_ttl,
        assignment_settle: Duration::from_millis(300),
        ..Default::default()
    }
}

/// Starts a coordinator as a separate "process".
fn start_coordinator(
    url: String,
    settings: CoordinatorSettings,
    info: support::FixedInfoArgs,
) -> Process {
    Process::spawn(move |shutdown| async move {
        let client = async_nats::connect(url).await.unwrap();
        let info = gateway_info(info.0, info.1, info.2, info.3, info.4);
        let coordinator = Coordinator::new(settings, client, names(), Arc::new(info));
        if let Err(error) = coordinator.run(shutdown).await {
            panic!("coordinator failed: {error}");
        }
    })
}

async fn read_status(server: &NatsServer) -> Option<CoordinatorStatus> {
    let js = server.jetstream().await;
    let store = shardline_jetstream::coordinator_bucket(&js, &names(), 1)
        .await
        .unwrap();
    let bytes = store.get(STATUS_KEY).await.unwrap()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

/// Waits until the status satisfies `check`.
async fn wait_status(
    server: &NatsServer,
    limit: Duration,
    what: &str,
    check: impl Fn(&CoordinatorStatus) -> bool,
) -> CoordinatorStatus {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = read_status(server).await
            && check(&status)
        {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until some coordinator holds the lease.
async fn wait_leader(server: &NatsServer) {
    let js = server.jetstream().await;
    let store = shardline_jetstream::coordinator_bucket(&js, &names(), 1)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get("leader").await.unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks for permits for `shards` from `clients` separate connections (one
/// "process" each), recording when each arrived.
async fn identify_from_processes(
    server: &NatsServer,
    shards: std::ops::Range<u32>,
    clients: usize,
    ledger: Arc<Ledger>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut queues = Vec::new();
    for worker in 0..clients {
        let queue = RemoteQueue::new(server.client().await, &names())
            .with_hold(Duration::from_millis(500))
            .with_worker(format!("p{worker}"));
        queues.push(Arc::new(queue));
    }
    let mut tasks = Vec::new();
    for shard in shards {
        let worker = shard as usize % clients;
        let queue = queues[worker].clone();
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let permit = queue.acquire(shard, 16).await.unwrap();
            ledger.identifies.lock().unwrap().push(support::Identify {
                shard,
                bucket: permit.bucket,
                at: Instant::now(),
                worker,
            });
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_honour_buckets_across_processes() {
    let server = NatsServer::start();
    let window = Duration::from_millis(150);
    let _coordinator = start_coordinator(
        server.url(),
        coordinator_settings("c1", window, Duration::from_secs(2)),
        (16, 4, 1000, 1000, 86_400_000),
    );
    let ledger = Arc::new(Ledger::default());
    let started = Instant::now();
    let tasks = identify_from_processes(&server, 0..16, 3, ledger.clone()).await;
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap()
            .unwrap();
    }
    let identifies = ledger.identifies();
    assert_eq!(identifies.len(), 16);
    let shards: BTreeSet<u32> = identifies.iter().map(|i| i.shard).collect();
    assert_eq!(shards.len(), 16, "a shard got two permits");
    ledger.assert_windows(window, Duration::from_millis(1));
    // 16 shards over 4 buckets: 4 windows' worth, after the leader's first window.
    let first = identifies.iter().map(|i| i.at).min().unwrap();
    let last = identifies.iter().map(|i| i.at).max().unwrap();
    assert!(
        last - first >= window * 3 - Duration::from_millis(25),
        "{:?}",
        last - first
    );
    assert!(
        last - first < window * 3 + Duration::from_millis(300),
        "{:?}",
        last - first
    );
    assert!(first - started < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_20_reserve_5_grants_exactly_15_of_32() {
    let server = NatsServer::start();
    let mut settings =
        coordinator_settings("c1", Duration::from_millis(50), Duration::from_secs(2));
    settings.shard_count = ShardCountSetting::Fixed(32);
    settings.session_reserve = Some(5);
    let _coordinator = start_coordinator(server.url(), settings, (32, 4, 20, 20, 3_600_000));
    let ledger = Arc::new(Ledger::default());
    let _tasks = identify_from_processes(&server, 0..32, 2, ledger.clone()).await;
    wait_for(Duration::from_secs(15), "15 permits", || {
        ledger.identifies().len() >= 15
    })
    .await;
    // Well past the time 32 permits would take without the budget.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ledger.identifies().len(), 15);
    let status = wait_status(
        &server,
        Duration::from_secs(5),
        "an exhausted status",
        |s| s.permits.budget.as_ref().is_some_and(|b| b.exhausted),
    )
    .await;
    let budget = status.permits.budget.unwrap();
    assert_eq!(budget.remaining, 5);
    assert_eq!(budget.reserve, 5);
    let reason = status.permits.paused_reason.unwrap();
    assert!(
        reason.contains("reserve") && reason.contains("resume at"),
        "{reason}"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(budget.resets_at_unix_ms > now_ms + 3_000_000, "{budget:?}");
    assert_eq!(status.permits.waiting, 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_a_crashed_leader_without_double_grants() {
    let server = NatsServer::start();
    let window = Duration::from_millis(200);
    let ttl = Duration::from_millis(600);
    let mut settings = coordinator_settings("a", window, ttl);
    settings.shard_count = ShardCountSetting::Fixed(64);
    let mut leader = start_coordinator(
        server.url(),
        settings.clone(),
        (64, 4, 1000, 1000, 86_400_000),
    );
    // Let "a" win the lease before the standby starts.
    wait_leader(&server).await;
    settings.id = Some("b".into());
    let _standby = start_coordinator(server.url(), settings, (64, 4, 1000, 1000, 86_400_000));
    let ledger = Arc::new(Ledger::default());
    let tasks = identify_from_processes(&server, 0..64, 3, ledger.clone()).await;
    wait_for(Duration::from_secs(10), "start-up under way", || {
        ledger.identifies().len() >= 10
    })
    .await;
    leader.crash();
    let crashed_at = Instant::now();
    let first = ledger.identifies().iter().map(|i| i.at).min().unwrap();
    eprintln!("crashed {:?} after the first identify", crashed_at - first);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
    }
    let identifies = ledger.identifies();
    assert_eq!(identifies.len(), 64);
    ledger.assert_windows(window, Duration::from_millis(1));
    // Permits the crashed leader granted arrive within the 20 ms margin of
    // the crash or are refused; everything later comes from the standby. It
    // took over at least 2/3 of the TTL after the crash (the last renewal was
    // at most TTL/3 earlier) and then waited one window.
    let from_standby = identifies
        .iter()
        .map(|i| i.at)
        .filter(|at| *at > crashed_at + Duration::from_millis(20))
        .min()
        .unwrap();
    assert!(
        from_standby - crashed_at >= ttl * 2 / 3 + window,
        "{:?}",
        from_standby - crashed_at
    );
    let status = read_status(&server).await.unwrap();
    assert_eq!(status.leader, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_hands_over_at_once_and_the_new_one_waits_a_window() {
    let server = NatsServer::start();
    let window = Duration::from_millis(300);
    let ttl = Duration::from_secs(5);
    let mut settings = coordinator_settings("a", window, ttl);
    let mut leader = start_coordinator(
        server.url(),
        settings.clone(),
        (16, 1, 1000, 1000, 86_400_000),
    );
    wait_leader(&server).await;
    settings.id = Some("b".into());
    let _standby = start_coordinator(server.url(), settings, (16, 1, 1000, 1000, 86_400_000));
    let ledger = Arc::new(Ledger::default());
    let tasks = identify_from_processes(&server, 0..6, 2, ledger.clone()).await;
    wait_for(Duration::from_secs(10), "two permits", || {
        ledger.identifies().len() >= 2
    })
    .await;
    let stopped_at = Instant::now();
    leader.stop().await;
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
    }
    // One bucket: every permit a window apart, across the hand-over too.
    ledger.assert_windows(window, Duration::from_millis(1));
    // The hand-over did not wait for the 5 s TTL.
    let last = ledger.identifies().iter().map(|i| i.at).max().unwrap();
    assert!(
        last - stopped_at < Duration::from_secs(4),
        "{:?}",
        last - stopped_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_shards_and_take_over_a_crashed_worker() {
    let server = NatsServer::start();
    let window = Duration::from_millis(50);
    let mut settings = coordinator_settings("c", window, Duration::from_secs(2));
    settings.shard_count = ShardCountSetting::Fixed(24);
    settings.total_workers = Some(3);
    let _coordinator = start_coordinator(server.url(), settings, (24, 4, 1000, 1000, 86_400_000));
    let ledger = Arc::new(Ledger::default());
    let sessions = Arc::new(Mutex::new(BTreeSet::new()));
    let mut workers = Vec::new();
    for index in 0..3 {
        let url = server.url();
        let ledger = ledger.clone();
        let sessions = sessions.clone();
        workers.push(Process::spawn(move |shutdown| async move {
            let client = async_nats::connect(url).await.unwrap();
            let queue =
                RemoteQueue::new(client.clone(), &names()).with_hold(Duration::from_millis(500));
            let runner = FakeRunner::new(index, Arc::new(queue), ledger, sessions);
            let settings = WorkerSettings {
                id: Some(format!("w{index}")),
                lease_ttl: Duration::from_millis(600),
                ..Default::default()
            };
            Worker::new(settings, client, names(), Arc::new(runner))
                .run(shutdown)
                .await
                .unwrap();
        }));
    }
    let status = wait_status(&server, Duration::from_secs(20), "24 shards ready", |s| {
        s.progress.ready == 24
    })
    .await;
    let mut sizes: Vec<u32> = status.workers.iter().map(|w| w.assigned).collect();
    sizes.sort();
    assert_eq!(sizes, vec![8, 8, 8]);
    assert_eq!(ledger.identifies().len(), 24);
    ledger.assert_windows(window, Duration::from_millis(1));
    workers[1].crash();
    ledger.forget_worker(1);
    let status = wait_status(
        &server,
        Duration::from_secs(20),
        "shards moved to the others",
        |s| s.workers.len() == 2 && s.progress.ready == 24 && s.unassigned == 0,
    )
    .await;
    assert_eq!(ledger.running_once(), 24);
    assert!(ledger.double_runs.lock().unwrap().is_empty());
    // They resumed: no new identify.
    assert_eq!(ledger.identifies().len(), 24);
    let sizes: Vec<u32> = status.workers.iter().map(|w| w.assigned).collect();
    assert_eq!(sizes, vec![12, 12]);
}
