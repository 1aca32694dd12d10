//! The OpenAPI document is generated from the handlers; this snapshot makes every change to the API
//! surface visible in review. Update with `INSTA_UPDATE=always cargo test openapi`.

#[test]
fn openapi_document_matches_snapshot() {
    let doc = serde_json::to_value(berth_http::openapi()).unwrap();
    // Sanity: the routes of the account API are all present.
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/user/initialize",
        "/api/v1/user/",
        "/api/v1/superuser/users/",
        "/api/v1/organization/",
        "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}",
        "/api/v1/organization/{orgname}/robots/{robot_shortname}",
        "/api/v1/user/robots/{robot_shortname}",
        "/api/v1/repository",
        "/api/v1/repository/{namespace}/{repository}/permissions/team/{teamname}",
        "/api/v1/repository/{namespace}/{repository}/logs",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    insta::assert_json_snapshot!("openapi", doc);
}
