//! `GET /v1/search` over real HTTP: committed works found by a word of their name, by creator,
//! by CID prefix and by commit time, page by page; bad questions answered with problems; a peer
//! run without the index answers 503.

use std::collections::BTreeSet;
use std::time::Duration;

use mediachain::client::wire::SearchPage;

use super::*;

/// Searches (bounded) until the index has followed the chain to `height`.
async fn search_at(client: &Client, height: u64, params: &[(&str, String)]) -> SearchPage {
    support::wait::within("the index to follow the chain", async {
        loop {
            let page = client.search(params).await.unwrap();
            if page.height >= height {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

fn q(text: &str) -> Vec<(&'static str, String)> {
    vec![("q", text.to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_works_are_found_by_word_creator_prefix_and_time_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let client = Client::new(&peer.url).unwrap();
    let (key, chain) = registered(&client).await;
    let info = client.info().await.unwrap();
    let from = client.head().await.unwrap().height + 1;
    let mut works = vec![];
    for name in ["Starry Night", "Starry Sea", "Water Lilies"] {
        works.push(write_work(&client, name).await);
    }
    let entries = works
        .iter()
        .flat_map(|&(entity, artefact, cell)| work_entries(entity, artefact, cell, time::now()))
        .collect();
    let tx = Transaction::create(
        &key,
        &chain,
        entries,
        time::now(),
        info.transaction_pow_bits,
    )
    .unwrap();
    client.submit(&tx).await.unwrap();
    let confirmation = support::wait::within(
        "the confirmation",
        client.await_confirmation(&tx.id(), from),
    )
    .await
    .unwrap();
    let block = confirmation.block.unwrap();

    // A word of the name: both artefacts and both authors ("Starry Night author").
    let starry = search_at(&client, block.height, &q("starry")).await;
    assert_eq!(starry.total, 4, "{starry:?}");
    let night = search_at(&client, block.height, &q("night")).await;
    let (entity, artefact, cell) = works[0];
    let hit = night.hits.iter().find(|h| h.subject == "artefact").unwrap();
    assert_eq!(hit.canonical, artefact.to_string());
    assert_eq!(hit.head, cell.to_string());
    assert_eq!(hit.meta["name"], "Starry Night");
    assert_eq!(hit.creators, vec![entity.to_string()]);
    assert_eq!(
        (hit.block.as_str(), hit.height),
        (block.cid.as_str(), block.height)
    );

    // Page by page: one hit each, every one once.
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", "starry".to_string()), ("limit", "1".to_string())];
        params.extend(cursor.take().map(|c| ("cursor", c)));
        let page = client.search(&params).await.unwrap();
        assert_eq!(page.hits.len(), 1);
        assert!(
            seen.insert(page.hits[0].canonical.clone()),
            "a hit came twice"
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);

    // By creator, by canonical prefix, by commit time.
    let (lilies_author, lilies, _) = works[2];
    let by = client
        .search(&[("creator", lilies_author.to_string())])
        .await
        .unwrap();
    let found: Vec<_> = by.hits.iter().map(|h| h.canonical.clone()).collect();
    assert_eq!(found, vec![lilies.to_string()]);
    let prefix = &lilies.to_string()[..20];
    let by_prefix = client
        .search(&[("canonical", prefix.to_string())])
        .await
        .unwrap();
    assert!(by_prefix
        .hits
        .iter()
        .any(|h| h.canonical == lilies.to_string()));
    let committed = &hit.committed;
    let at = humantime::parse_rfc3339_weak(committed).unwrap();
    let hour = Duration::from_secs(3600);
    let rfc = |t: std::time::SystemTime| humantime::format_rfc3339(t).to_string();
    let around = [
        ("from", rfc(at - hour)),
        ("to", rfc(at + hour)),
        ("q", "starry".into()),
    ];
    assert_eq!(client.search(&around).await.unwrap().total, 4);
    let later = [("from", rfc(at + hour))];
    assert_eq!(client.search(&later).await.unwrap().total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_questions_get_problems_that_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let peer = peer(&dir).await;
    let http = reqwest::Client::new();
    for (query, says) in [
        ("q=title:starry", "title"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=100&cursor=9950", "10000"),
        ("cursor=abc", "cursor"),
        ("from=yesterday", "from"),
        ("creator=notacid", "CID"),
        ("canonical=ba%2Fy", "prefix"),
        (
            "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
            "before",
        ),
    ] {
        let response = http
            .get(format!("{}/v1/search?{query}", peer.url))
            .send()
            .await
            .unwrap();
        let (status, problem) = problem_of(response).await;
        assert_eq!(status, 400, "{query}: {problem:?}");
        assert!(
            problem.detail.contains(says),
            "{query}: {} does not name {says}",
            problem.detail
        );
    }
    let long = "a".repeat(600);
    let response = http
        .get(format!("{}/v1/search?q={long}", peer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(problem_of(response).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_run_without_the_index_says_so_and_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        search: false,
        ..LocalOptions::default()
    };
    let peer = LocalPeer::start(dir.path(), options).await.unwrap();
    let response = reqwest::get(format!("{}/v1/search?q=starry", peer.url))
        .await
        .unwrap();
    let (status, problem) = problem_of(response).await;
    assert_eq!(status, 503, "{problem:?}");
    assert!(problem.kind.ends_with("search-unavailable"), "{problem:?}");
    assert!(!dir.path().join("search").exists(), "no index on disk");
}
