"""Float logits from an INT8 graph: the graph's outputs are not quantized.

onnxruntime's static quantizer quantizes every activation, the logits included: the last Gemm's output goes through
QuantizeLinear → DequantizeLinear (QDQ), or QGemm writes INT8 that a DequantizeLinear reads (QOperator). The logits
then sit on an 8-bit grid (a step of 0.103 for a LeNet-5's logits), so two classes often share the top score — 2.9 %
of Fashion-MNIST's test images for a LeNet-5 (probe 70) — and argmax gives the lower class index: top-1 moved by
±1 point and one class by 8.7 points with the tie rule alone. Nothing downstream reads INT8 logits, so keeping them
in float costs one layer's requantization and nothing else (onnxruntime's `OpTypesToExcludeOutputQuantization`
does this for the QDQ layout by op type; here it is done for the graph outputs only, in both layouts).
"""

from __future__ import annotations

from pathlib import Path

import onnx

from cnnlab.fileio import atomic_path

QGEMM_FLOAT_INPUTS = 7  # com.microsoft QGemm without y_scale and y_zero_point writes float (A, scales, B, C)


def float_outputs(path: Path) -> list[str]:
    """Rewrite the ONNX file `path` in place so that each graph output written by DequantizeLinear is the float
    tensor that was quantized (QDQ: the QuantizeLinear's input; QOperator: a QGemm's output, made float by dropping
    its output scale and zero point). Returns the outputs changed; an output of another pattern (a QLinearConv,
    a tensor something else also reads) is left as it is."""
    model = onnx.load(str(path))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    changed, removed = [], []
    for output in graph.output:
        dequantize = producer.get(output.name)
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        quantized = producer.get(dequantize.input[0])
        if quantized is None or readers.get(dequantize.input[0], 0) != 1:
            continue
        if quantized.op_type == "QuantizeLinear" and readers.get(quantized.input[0], 0) == 1 \
                and quantized.input[0] in producer:
            source = producer[quantized.input[0]]
            source.output[list(source.output).index(quantized.input[0])] = output.name
            removed += [quantized, dequantize]
        elif quantized.op_type == "QGemm" and quantized.domain == "com.microsoft" \
                and len(quantized.input) > QGEMM_FLOAT_INPUTS:
            del quantized.input[QGEMM_FLOAT_INPUTS:]
            quantized.output[0] = output.name
            removed.append(dequantize)
        else:
            continue
        changed.append(output.name)
    if not changed:
        return []
    for node in removed:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:  # the output's scale and zero point
        graph.initializer.remove(init)
    with atomic_path(path) as written:
        onnx.save(model, str(written))
    return changed
