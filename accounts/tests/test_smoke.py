"""Smoke: the two-tenant world builds and /v1/me answers for each side."""


def test_it_answers_me_for_each_tenant(world, client):
    for side in (world.a, world.b):
        response = client.get("/v1/me", **side.auth)
        assert response.status_code == 200
        assert response.json()["tenant"]["slug"] == side.tenant.slug
