"""The webserver's Ingress: off by default, and when on, every host and path routed to the
webserver Service, with the class, annotations and TLS the values give."""

from __future__ import annotations

from chart_render import CHART_DIR

INGRESS_VALUES = CHART_DIR / "ci" / "webserver-ingress-values.yaml"
ONE_HOST = {"dagsterWebserver.ingress.enabled": "true", "dagsterWebserver.ingress.hosts[0].host": "dagster.example.com"}


def test_ingress_is_off_by_default(render):
    assert render().of_kind("Ingress") == []


def test_ingress_routes_every_path_to_the_webserver_service(render):
    rendered = render(INGRESS_VALUES)
    (ingress,) = rendered.of_kind("Ingress")
    service = rendered.one("Service", "-webserver")
    (service_port,) = service["spec"]["ports"]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["labels"]["app.kubernetes.io/component"] == "webserver"
    routes = {
        (rule["host"], path["path"], path["pathType"]): path["backend"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    # A host without paths gets `path`/`pathType`; the other keeps its own.
    assert set(routes) == {
        ("dagster.example.com", "/", "Prefix"),
        ("ops.example.com", "/dagster", "ImplementationSpecific"),
        ("ops.example.com", "/graphql", "Exact"),
    }
    for backend in routes.values():
        assert backend == {"service": {"name": service["metadata"]["name"], "port": {"name": service_port["name"]}}}


def test_ingress_class_annotations_and_tls_come_from_the_values(render):
    (ingress,) = render(INGRESS_VALUES).of_kind("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-read-timeout": "300"}
    assert ingress["spec"]["tls"] == [
        {"secretName": "dagster-example-tls", "hosts": ["dagster.example.com", "ops.example.com"]}
    ]


def test_ingress_without_class_tls_or_annotations_leaves_them_to_the_cluster(render):
    (ingress,) = render(set_values=ONE_HOST).of_kind("Ingress")
    assert "ingressClassName" not in ingress["spec"]
    assert "tls" not in ingress["spec"]
    assert "annotations" not in ingress["metadata"]


def test_ingress_default_path_and_path_type_follow_the_values(render):
    rendered = render(
        set_values={
            **ONE_HOST,
            "dagsterWebserver.ingress.path": "/dagster",
            "dagsterWebserver.ingress.pathType": "Exact",
        }
    )
    (ingress,) = rendered.of_kind("Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/dagster", "Exact")]


def test_ingress_host_path_without_path_type_takes_the_default(render):
    rendered = render(
        set_values={
            **ONE_HOST,
            "dagsterWebserver.ingress.pathType": "ImplementationSpecific",
            "dagsterWebserver.ingress.hosts[0].paths[0].path": "/ui",
        }
    )
    (rule,) = rendered.of_kind("Ingress")[0]["spec"]["rules"]
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/ui", "ImplementationSpecific")]


def test_turning_the_ingress_on_restarts_nothing(render):
    """The Ingress is outside the ConfigMaps the pods read: no checksum changes with it."""

    def checksums(rendered):
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"].get("annotations", {}).get("checksum/config")
            for d in rendered.of_kind("Deployment")
        }

    assert checksums(render(INGRESS_VALUES)) == checksums(render())
