//! The harness's own tests: real servers, real publishes, real outages.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use shardline_harness::{NatsCluster, NatsServer};

async fn publish_acked(js: &jetstream::Context, subject: &str, payload: String) -> u64 {
    js.publish(subject.to_owned(), payload.into())
        .await
        .expect("publish sent")
        .await
        .expect("publish acknowledged")
        .sequence
}

async fn stored_payloads(js: &jetstream::Context, stream: &str) -> Vec<String> {
    let stream = js.get_stream(stream).await.expect("stream exists");
    let last = stream.get_info().await.expect("info").state.last_sequence;
    let mut payloads = Vec::new();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.expect("message stored");
        payloads.push(String::from_utf8(message.payload.to_vec()).expect("utf-8"));
    }
    payloads
}

#[tokio::test]
async fn single_server_accepts_jetstream_publishes() {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    js.create_stream(stream::Config {
        name: "T".into(),
        subjects: vec!["t.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream created");
    for i in 0..100 {
        assert_eq!(publish_acked(&js, "t.x", format!("m{i}")).await, i + 1);
    }
    let stored = stored_payloads(&js, "T").await;
    assert_eq!(stored.len(), 100);
    assert_eq!(stored[99], "m99");
}

#[tokio::test]
async fn server_restarted_with_its_data_intact() {
    let mut server = NatsServer::start();
    let port = server.port();
    {
        let js = server.jetstream().await;
        js.create_stream(stream::Config {
            name: "KEEP".into(),
            subjects: vec!["keep".into()],
            ..Default::default()
        })
        .await
        .expect("stream created");
        for i in 0..50 {
            publish_acked(&js, "keep", format!("m{i}")).await;
        }
    }
    server.stop();
    assert!(!server.is_running());
    assert!(
        async_nats::connect(server.url()).await.is_err(),
        "a stopped server must refuse clients"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart();
    assert_eq!(server.port(), port, "restart keeps the port");
    let js = server.jetstream().await;
    let stored = stored_payloads(&js, "KEEP").await;
    assert_eq!(stored, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn killed_server_keeps_acknowledged_messages() {
    let mut server = NatsServer::start();
    let js = server.jetstream().await;
    js.create_stream(stream::Config {
        name: "CRASH".into(),
        subjects: vec!["crash".into()],
        ..Default::default()
    })
    .await
    .expect("stream created");
    for i in 0..20 {
        publish_acked(&js, "crash", format!("m{i}")).await;
    }
    server.kill();
    server.restart();
    let js = server.jetstream().await;
    assert_eq!(stored_payloads(&js, "CRASH").await.len(), 20);
}

#[tokio::test]
async fn r3_stream_survives_one_node_killed() {
    let mut cluster = NatsCluster::start();
    let client = cluster.client().await;
    let js = jetstream::new(client);
    let mut created = None;
    for _ in 0..100 {
        match js
            .create_stream(stream::Config {
                name: "R3".into(),
                subjects: vec!["r3.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
        {
            Ok(stream) => {
                created = Some(stream);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(created.is_some(), "R3 stream could not be created");

    let mut acked = Vec::new();
    for i in 0..100 {
        publish_acked(&js, "r3.a", format!("m{i}")).await;
        acked.push(format!("m{i}"));
    }
    // Kill a node while publishing continues: every publish must still be acked.
    cluster.kill(2);
    for i in 100..300 {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                js.publish("r3.a", format!("m{i}").into())
                    .await?
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
            .await;
            match result {
                Ok(_) => break,
                // A leader on the killed node needs a moment to move.
                Err(_) if attempt < 100 => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(error) => panic!("publish {i} not acked with one node down: {error}"),
            }
        }
        acked.push(format!("m{i}"));
    }
    cluster.restart(2);
    // After the node returns, every acked message is there, in order, once.
    let mut stored = Vec::new();
    for _ in 0..100 {
        stored = stored_payloads(&js, "R3").await;
        if stored.len() >= acked.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A publish retried after a lost ack may be stored twice (no Nats-Msg-Id here);
    // what matters is that nothing acknowledged is missing.
    let mut deduplicated = stored.clone();
    deduplicated.dedup();
    assert_eq!(deduplicated, acked);

    // The restarted node itself serves the stream with everything in it.
    let direct = jetstream::new(cluster.node(2).client().await);
    let info = direct
        .get_stream("R3")
        .await
        .expect("stream visible from restarted node")
        .get_info()
        .await
        .expect("info");
    assert!(info.state.messages >= 300);
}

#[test]
fn parallel_servers_never_collide() {
    let servers: Vec<NatsServer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(NatsServer::start)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("server thread"))
            .collect()
    });
    let mut ports: Vec<u16> = servers.iter().map(NatsServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "each server has its own port");
    let mut stores: Vec<_> = servers.iter().map(NatsServer::store_dir).collect();
    stores.sort();
    stores.dedup();
    assert_eq!(stores.len(), 4, "each server has its own store");
    let store = servers[0].store_dir();
    drop(servers);
    assert!(!store.exists(), "the store is deleted on drop");
}
