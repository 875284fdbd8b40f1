//! Deploy scripts (versions) and enrollment tokens (expiry, revocation, enrollments).

use apiary_store::{NewEnrollmentToken, SensorRecord, StoreError};
use chrono::{Duration, Utc};

#[tokio::test]
async fn scripts_are_versioned_and_tokens_expire_and_revoke() {
    let st = apiary_store::open("sqlite::memory:").await.unwrap();
    let s = st
        .create_deploy_script("Test <b>", "apiary", "echo 1\n", "first", "a@x")
        .await
        .unwrap();
    assert_eq!(s.version, 1);
    assert!(matches!(
        st.create_deploy_script("Test <b>", "apiary", "x", "", "")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        st.create_deploy_script(" ", "apiary", "x", "", "").await,
        Err(StoreError::Invalid(_))
    ));
    let s2 = st
        .update_deploy_script(s.id, "echo 2\n", "second", "b@x")
        .await
        .unwrap();
    assert_eq!(
        (s2.version, s2.body.as_str(), s2.author.as_str()),
        (2, "echo 2\n", "b@x")
    );
    let vs = st.deploy_script_versions(s.id).await.unwrap();
    assert_eq!(vs.len(), 2);
    assert_eq!((vs[0].version, vs[1].version), (2, 1));
    assert_eq!(vs[1].body, "echo 1\n");
    assert!(matches!(
        st.update_deploy_script(999, "x", "", "").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(st.list_deploy_scripts().await.unwrap().len(), 1);

    let now = Utc::now();
    let t = st
        .create_enrollment_token(&NewEnrollmentToken {
            script_id: s.id,
            token_hash: "h1".into(),
            prefix: "abcd".into(),
            label: "lab".into(),
            created_by: "a@x".into(),
            expires_at: now + Duration::hours(1),
        })
        .await
        .unwrap();
    assert!(t.is_valid(now));
    assert!(!t.is_valid(now + Duration::hours(2)), "expired");
    let got = st.enrollment_token("h1").await.unwrap().unwrap();
    assert_eq!(got, t);
    assert!(st.enrollment_token("nope").await.unwrap().is_none());
    assert!(st.revoke_enrollment_token(t.id).await.unwrap());
    assert!(!st
        .enrollment_token("h1")
        .await
        .unwrap()
        .unwrap()
        .is_valid(now));
    assert!(!st.revoke_enrollment_token(12345).await.unwrap());
    assert!(matches!(
        st.create_enrollment_token(&NewEnrollmentToken {
            script_id: 999,
            token_hash: "h2".into(),
            prefix: String::new(),
            label: String::new(),
            created_by: String::new(),
            expires_at: now,
        })
        .await,
        Err(StoreError::NotFound)
    ));

    // Enrollments: remembered per (token, hostname) while the sensor exists.
    assert!(st.enrolled_sensor(t.id, "h").await.unwrap().is_none());
    let rec = SensorRecord {
        uuid: "u1".into(),
        name: "n".into(),
        hostname: "h".into(),
        ip: None,
        honeypot: "apiary".into(),
        ident: "u1".into(),
        created_at: now,
        last_seen: None,
        heartbeat: None,
        latitude: None,
        longitude: None,
    };
    st.create_sensor(&rec).await.unwrap();
    st.record_enrollment(t.id, "h", "u1", now).await.unwrap();
    st.record_enrollment(t.id, "h", "u1", now).await.unwrap();
    assert_eq!(
        st.enrolled_sensor(t.id, "h").await.unwrap().as_deref(),
        Some("u1")
    );
    assert_eq!(st.sensor_enrollment_token("u1").await.unwrap(), Some(t.id));
    assert_eq!(
        st.list_enrollment_tokens(Some(s.id)).await.unwrap()[0].uses,
        2
    );
    st.delete_sensor("u1").await.unwrap();
    assert!(st.enrolled_sensor(t.id, "h").await.unwrap().is_none());
}
