"""Every fusion method and its feedback options survive the trip through the protobuf request."""

import pytest

from lamina.retrieval.query import Fusion, SearchRequest, Stage
from lamina.service.convert import search_request_from_proto, search_request_to_proto
from lamina.service.v1 import search_pb2


@pytest.mark.parametrize("fusion", [Fusion("rrf", (1.0, 2.0), rrf_k=10.0), Fusion("weighted"), Fusion("zscore"),
                                    Fusion(), Fusion("adaptive", (1.0, 0.3), feedback=0),
                                    Fusion("adaptive", feedback=3, feedback_weight=1.0)])
def test_fusion_round_trip(fusion):
    request = SearchRequest("wing", 10, (Stage("dense"), Stage("sparse")), fusion)
    back = search_request_from_proto(search_request_to_proto("c", request))
    assert back.fusion == fusion and back.fusion.feedback_docs == fusion.feedback_docs


def test_unspecified_fusion_is_the_default():
    message = search_request_to_proto("c", SearchRequest("wing", 10, (Stage("dense"), Stage("sparse"))))
    message.fusion.Clear()
    assert search_request_from_proto(message).fusion == Fusion()
    assert message.fusion.method == search_pb2.FUSION_METHOD_UNSPECIFIED
