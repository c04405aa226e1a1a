//! Several versions of one event on one stream: family consumers receive the version enum,
//! upcasting consumers receive one type whatever version was published.

use eventhub::Envelope;
use eventhub::Upcasted;
use eventhub_catalog::events::user;

use crate::support::{
    connect, next, quick, record, server_and_client, user_created_v1, user_created_v2,
};

/// A service's own view of a user, converted from every version (allowed in the service's crate:
/// the target type is local).
#[derive(Debug, Clone, PartialEq)]
struct Welcome {
    email: String,
    language: Option<String>,
}

impl From<user::CreatedV1> for Welcome {
    fn from(v1: user::CreatedV1) -> Self {
        Welcome {
            email: v1.email,
            language: None,
        }
    }
}

impl From<user::CreatedV2> for Welcome {
    fn from(v2: user::CreatedV2) -> Self {
        Welcome {
            email: v2.email,
            language: Some(v2.locale.to_string()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_receive_every_version_as_the_enum_or_upcast() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let publisher = auth.publisher();
    let v1 = user_created_v1("one@example.com");
    let v2 = user_created_v2("two@example.com");
    let v1b = user_created_v1("three@example.com");
    publisher.publish(&v1).await.unwrap();
    publisher.publish(&v2).await.unwrap();
    publisher.publish(&v1b).await.unwrap();

    // The family: the version enum, in publish order.
    let profile = connect(&server, "profile").await;
    let (h1, mut family) =
        record::<user::Created, _>(&profile, quick(), |env| env.event().clone()).await;
    assert_eq!(next(&mut family, 10).await, user::Created::V1(v1.clone()));
    assert_eq!(next(&mut family, 10).await, user::Created::V2(v2.clone()));
    assert_eq!(next(&mut family, 10).await, user::Created::V1(v1b.clone()));

    // Upcast to the latest version: v1 events arrive as v2 (conversion in the SDK).
    let admin = connect(&server, "admin").await;
    let (h2, mut latest) = record::<Upcasted<user::Created, user::CreatedV2>, _>(
        &admin,
        quick(),
        |env: &Envelope<Upcasted<user::Created, user::CreatedV2>>| {
            (env.event().version(), (**env.event()).clone())
        },
    )
    .await;
    let (version, first) = next(&mut latest, 10).await;
    assert_eq!(version, 1, "the original version stays visible");
    assert_eq!(first, user::CreatedV2::from(v1.clone()));
    assert_eq!(*first.locale, "und");
    assert_eq!(next(&mut latest, 10).await, (2, v2.clone()));
    assert_eq!(next(&mut latest, 10).await.1.email, v1b.email);

    // Upcast to a service-local type.
    let welcome = connect(&server, "welcome").await;
    let (h3, mut local) = record::<Upcasted<user::Created, Welcome>, _>(
        &welcome,
        quick(),
        |env: &Envelope<Upcasted<user::Created, Welcome>>| (**env.event()).clone(),
    )
    .await;
    assert_eq!(
        next(&mut local, 10).await,
        Welcome {
            email: "one@example.com".into(),
            language: None
        }
    );
    assert_eq!(
        next(&mut local, 10).await,
        Welcome {
            email: "two@example.com".into(),
            language: Some("en-GB".into())
        }
    );
    assert_eq!(next(&mut local, 10).await.email, "three@example.com");

    for h in [h1, h2, h3] {
        let stats = h.shutdown().await;
        assert_eq!(stats.handled, 3, "{stats:?}");
        assert_eq!(stats.dead_lettered, 0, "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_version_consumer_sees_only_its_version() {
    let (server, auth) = server_and_client("auth").await;
    auth.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let publisher = auth.publisher();
    publisher
        .publish(&user_created_v1("old@example.com"))
        .await
        .unwrap();
    let v2 = user_created_v2("new@example.com");
    publisher.publish(&v2).await.unwrap();

    let profile = connect(&server, "profile").await;
    let (h, mut rx) =
        record::<user::CreatedV2, _>(&profile, quick(), |env| env.event().clone()).await;
    assert_eq!(
        next(&mut rx, 10).await,
        v2,
        "the v1 event is not on its subject filter"
    );
    let stats = h.shutdown().await;
    assert_eq!(stats.handled, 1, "{stats:?}");
}
