//! Replay against a real nats-server: each filter returns exactly the matching
//! events in stream order; interrupted replays resume without loss or repeats.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_nats::jetstream;
use shardline_harness::NatsServer;
use shardline_jetstream::replay::{
    self, CountingSink, End, JsonLinesSink, RecordSink, ReplayError, ReplayOptions, Selection,
    Start,
};
use shardline_jetstream::{StreamSettings, ensure_dispatch_stream};
use shardline_wire::{Names, Record, headers};
use tokio_util::sync::CancellationToken;

const EVENTS: [&str; 3] = ["MESSAGE_CREATE", "TYPING_START", "GUILD_MEMBER_ADD"];
const GUILDS: [&str; 3] = ["100", "200", "300"];

/// What the test published: (stream sequence, event, shard, guild).
type Published = Vec<(u64, &'static str, u32, Option<&'static str>)>;

fn names() -> Names {
    Names::new("discord", "replaytest").unwrap()
}

async fn setup(server: &NatsServer) -> jetstream::Context {
    let js = server.jetstream().await;
    ensure_dispatch_stream(&js, &names(), &StreamSettings::default())
        .await
        .unwrap();
    js
}

/// Publishes `count` events cycling through event types, guilds and shards.
async fn publish(js: &jetstream::Context, from: u64, count: u64) -> Published {
    let names = names();
    let mut published = Vec::new();
    for i in from..from + count {
        let event = EVENTS[(i % 3) as usize];
        let shard = (i % 2) as u32;
        // Every fourth event has no guild (a DM).
        let guild = (i % 4 != 0).then(|| GUILDS[((i / 2) % 3) as usize]);
        let mut map = async_nats::HeaderMap::new();
        map.insert(headers::MSG_ID, headers::msg_id(shard, "s", i).as_str());
        map.insert(headers::SEQ, i.to_string().as_str());
        map.insert(headers::RECEIVED_AT, "2026-11-25T00:00:00Z");
        if let Some(guild) = guild {
            map.insert(headers::GUILD_ID, guild);
        }
        let body = format!(r#"{{"n":{i}}}"#);
        let ack = js
            .publish_with_headers(names.dispatch_subject(event, shard), map, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
        published.push((ack.sequence, event, shard, guild));
    }
    published
}

#[derive(Default)]
struct Collect(Vec<Record>);

impl RecordSink for Collect {
    async fn send(&mut self, record: Record) -> std::io::Result<()> {
        self.0.push(record);
        Ok(())
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn replay_into<S: RecordSink>(
    js: &jetstream::Context,
    selection: &Selection,
    sink: &mut S,
    stop: &CancellationToken,
) -> Result<replay::ReplayOutcome, ReplayError> {
    let options = ReplayOptions {
        mark_replay: true,
        ..Default::default()
    };
    replay::replay(js, &names(), selection, &options, sink, stop, |_| {}).await
}

async fn run(js: &jetstream::Context, selection: &Selection) -> Vec<Record> {
    let mut sink = Collect::default();
    let outcome = replay_into(js, selection, &mut sink, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        outcome.resume_from, None,
        "an uninterrupted replay completes"
    );
    assert!(sink.0.iter().all(|r| r.replay));
    sink.0
}

async fn run_err(js: &jetstream::Context, selection: Selection) -> ReplayError {
    replay_into(
        js,
        &selection,
        &mut CountingSink::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err()
}

fn sequences(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r.id.rsplit_once(':').unwrap().1.parse().unwrap())
        .collect()
}

fn expect(
    published: &Published,
    keep: impl Fn(&(u64, &str, u32, Option<&str>)) -> bool,
) -> Vec<u64> {
    published.iter().filter(|p| keep(p)).map(|p| p.0).collect()
}

#[tokio::test]
async fn each_filter_returns_exactly_the_matching_events_in_order() {
    let server = NatsServer::start();
    let js = setup(&server).await;
    let published = publish(&js, 1, 120).await;

    let all = run(&js, &Selection::default()).await;
    assert_eq!(sequences(&all), expect(&published, |_| true));

    let selection = Selection {
        events: vec!["TYPING_START".into()],
        ..Selection::default()
    };
    let by_event = run(&js, &selection).await;
    assert_eq!(
        sequences(&by_event),
        expect(&published, |p| p.1 == "TYPING_START")
    );
    assert!(by_event.iter().all(|r| r.event == "TYPING_START"));

    let selection = Selection {
        guilds: vec!["200".into()],
        ..Selection::default()
    };
    let by_guild = run(&js, &selection).await;
    assert_eq!(
        sequences(&by_guild),
        expect(&published, |p| p.3 == Some("200"))
    );

    let selection = Selection {
        shards: vec![1],
        ..Selection::default()
    };
    let by_shard = run(&js, &selection).await;
    assert_eq!(sequences(&by_shard), expect(&published, |p| p.2 == 1));

    let selection = Selection {
        start: Start::Sequence(30),
        end: Some(End::Sequence(45)),
        ..Selection::default()
    };
    let by_range = run(&js, &selection).await;
    assert_eq!(sequences(&by_range), (30..=45).collect::<Vec<_>>());

    let selection = Selection {
        start: Start::Sequence(10),
        end: Some(End::Sequence(100)),
        events: vec!["MESSAGE_CREATE".into(), "GUILD_MEMBER_ADD".into()],
        guilds: vec!["100".into(), "300".into()],
        shards: vec![0],
    };
    let combined = run(&js, &selection).await;
    let wanted = expect(&published, |p| {
        (10..=100).contains(&p.0)
            && p.1 != "TYPING_START"
            && matches!(p.3, Some("100" | "300"))
            && p.2 == 0
    });
    assert!(!wanted.is_empty());
    assert_eq!(sequences(&combined), wanted);
}

#[tokio::test]
async fn time_window_selects_what_was_stored_inside_it() {
    let server = NatsServer::start();
    let js = setup(&server).await;
    publish(&js, 1, 10).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let from = time::OffsetDateTime::now_utc();
    let middle = publish(&js, 11, 10).await;
    let to = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    publish(&js, 21, 10).await;

    let selection = Selection {
        start: Start::Time(from),
        end: Some(End::Time(to)),
        ..Selection::default()
    };
    let window = run(&js, &selection).await;
    assert_eq!(sequences(&window), expect(&middle, |_| true));
}

/// A sink that interrupts the replay after `limit` records.
struct StopAfter {
    records: Vec<Record>,
    limit: usize,
    stop: CancellationToken,
}

impl RecordSink for StopAfter {
    async fn send(&mut self, record: Record) -> std::io::Result<()> {
        self.records.push(record);
        if self.records.len() == self.limit {
            self.stop.cancel();
        }
        Ok(())
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn interrupted_replay_resumes_and_delivers_the_rest_once() {
    let server = NatsServer::start();
    let js = setup(&server).await;
    let published = publish(&js, 1, 200).await;
    let selection = Selection {
        events: vec!["MESSAGE_CREATE".into(), "TYPING_START".into()],
        ..Selection::default()
    };
    let stop = CancellationToken::new();
    let mut first = StopAfter {
        records: Vec::new(),
        limit: 37,
        stop: stop.clone(),
    };
    let outcome = replay_into(&js, &selection, &mut first, &stop)
        .await
        .unwrap();
    let resume_from = outcome
        .resume_from
        .expect("an interrupted replay says where to resume");
    assert_eq!(first.records.len(), 37);

    let rest = run(
        &js,
        &Selection {
            start: Start::Sequence(resume_from),
            ..selection.clone()
        },
    )
    .await;
    let mut all = sequences(&first.records);
    all.extend(sequences(&rest));
    assert_eq!(all, expect(&published, |p| p.1 != "GUILD_MEMBER_ADD"));
}

#[tokio::test]
async fn replay_ends_while_live_events_keep_arriving() {
    let server = NatsServer::start();
    let js = setup(&server).await;
    publish(&js, 1, 50).await;
    let live_js = js.clone();
    let live = tokio::spawn(async move { publish(&live_js, 1000, 300).await });
    let mut sink = CountingSink::default();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        replay_into(
            &js,
            &Selection::default(),
            &mut sink,
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("the replay ends at the stream's end as of its start")
    .unwrap();
    assert!(outcome.progress.delivered >= 50);
    assert_eq!(outcome.resume_from, None);
    live.await.unwrap();
}

#[tokio::test]
async fn clear_errors_name_what_exists() {
    let server = NatsServer::start();
    let js = setup(&server).await;
    publish(&js, 1, 30).await;
    let stream = js.get_stream(names().dispatch_stream()).await.unwrap();
    stream.purge().sequence(11).await.unwrap();

    let err = run_err(
        &js,
        Selection {
            start: Start::Sequence(5),
            ..Selection::default()
        },
    )
    .await;
    assert!(
        matches!(
            err,
            ReplayError::BeforeRetention {
                first_sequence: 11,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("sequence 11"), "{err}");

    let err = run_err(
        &js,
        Selection {
            events: vec!["MESSAGE_CRATE".into()],
            ..Selection::default()
        },
    )
    .await;
    let text = err.to_string();
    assert!(
        text.contains("MESSAGE_CRATE")
            && text.contains("MESSAGE_CREATE (")
            && text.contains("TYPING_START ("),
        "{text}"
    );

    let err = run_err(
        &js,
        Selection {
            start: Start::Sequence(20),
            end: Some(End::Sequence(12)),
            ..Selection::default()
        },
    )
    .await;
    assert!(matches!(err, ReplayError::EmptyRange { .. }), "{err}");
}

#[tokio::test]
async fn json_lines_hold_the_record_shape() {
    let server = NatsServer::start();
    let js = setup(&server).await;
    publish(&js, 1, 5).await;
    let mut buffer = Vec::new();
    {
        let mut sink = JsonLinesSink::new(&mut buffer);
        replay_into(
            &js,
            &Selection::default(),
            &mut sink,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    }
    let text = String::from_utf8(buffer).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    let record: Record = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(record.id, "DISCORD_REPLAYTEST:2");
    assert_eq!(record.data.get(), r#"{"n":2}"#);
    assert!(record.replay);
}
