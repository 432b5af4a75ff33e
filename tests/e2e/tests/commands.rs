#![allow(clippy::unwrap_used)]

//! Gateway commands over NATS request/reply reach the simulator; a burst of
//! 121 is held back to stay inside Discord's 120 per 60 s (never a
//! disconnect); a 5 KiB command is rejected with a clear error.

use std::time::Duration;

use shardline_e2e::{ShardSet, Stack, wait_for_sim};
use shardline_gateway::{CommandReply, Compression};
use shardline_sim::{SimConfig, Violation};

fn presence(n: usize) -> String {
    format!(
        r#"{{"op":3,"d":{{"since":null,"activities":[{{"name":"test {n}","type":0}}],"status":"online","afk":false}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_rate_limited_validated_and_delivered() {
    let stack = Stack::start(SimConfig {
        guilds: 2,
        shards: Some(1),
        identify_window: Duration::from_millis(10),
        events_per_second: 0.0,
        heartbeat_interval: Duration::from_secs(20),
        ..SimConfig::default()
    })
    .await;
    let shards = ShardSet::start(&stack, 1, Compression::ZlibStream).await;
    shards.wait_active(Duration::from_secs(20)).await;
    let client = stack.nats.client().await;
    let subject = stack.names.command_subject(0);

    // 5 KiB: rejected, with the limit in the message.
    let big = format!(r#"{{"op":3,"d":{{"status":"{}"}}}}"#, "x".repeat(5 * 1024));
    let reply = client.request(subject.clone(), big.into()).await.unwrap();
    let reply: CommandReply = serde_json::from_slice(&reply.payload).unwrap();
    match reply {
        CommandReply::Rejected { error } => assert!(error.contains("4096"), "{error}"),
        other => panic!("a 5 KiB command was not rejected: {other:?}"),
    }
    // Not a command at all.
    let reply = client
        .request(subject.clone(), r#"{"op":2,"d":{}}"#.into())
        .await
        .unwrap();
    let reply: CommandReply = serde_json::from_slice(&reply.payload).unwrap();
    assert!(!reply.is_accepted());

    // 121 presence updates at once: all accepted (queued), not all sent now.
    for n in 0..121 {
        let reply = client
            .request(subject.clone(), presence(n).into())
            .await
            .unwrap();
        let reply: CommandReply = serde_json::from_slice(&reply.payload).unwrap();
        assert!(reply.is_accepted(), "command {n}: {reply:?}");
    }
    wait_for_sim(&stack, "the first burst", Duration::from_secs(10), |s| {
        s.commands_of("presence_update") >= 55
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = stack.sim.stats();
    let sent = stats.commands_of("presence_update");
    assert!(
        (55..121).contains(&sent),
        "{sent} presence updates within about 3 s of a 121-command burst"
    );
    assert_eq!(stats.violations_of(Violation::CommandRateLimit), 0);
    assert_eq!(
        stats.violations.values().sum::<u64>(),
        0,
        "{:?}",
        stats.violations
    );
    // They arrive as sent, in order.
    let first = &stats.command_log[0];
    assert_eq!(first.op, 3);
    assert_eq!(first.d["activities"][0]["name"], "test 0");
    assert_eq!(stats.connections_total, 1, "never disconnected");
    shards.shutdown().await;
}
