from setuptools import find_packages, setup

setup(
    name="gimm-trt",
    version="0.1.0",
    description="Fast GIMM-VFI video frame interpolation: PyTorch reference, ONNX export, TensorRT engines",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["gimm_trt", "gimm_trt.*"]),
    package_data={"gimm_trt.model": ["manifests/*.json"]},
    install_requires=[
        "torch>=2.4",
        "numpy",
        "click>=8",
        "safetensors",
        "tqdm",
        "pillow",
    ],
    extras_require={
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18", "onnxruntime-extensions", "onnxscript"],
        "tensorrt": ["polygraphy>=0.49", "tensorrt>=10.9"],
        "triton": ["triton>=3.0"],
        "cupy": ["cupy-cuda12x"],
        "video": ["av>=12", "pillow"],
        "bench": ["psutil", "matplotlib", "nvidia-ml-py"],
        "test": ["pytest>=7", "triton>=3.0", "onnx>=1.16", "onnxruntime>=1.18", "onnxruntime-extensions",
                 "onnxscript", "polygraphy>=0.49", "av>=12", "pillow", "psutil", "matplotlib"],
    },
    entry_points={"console_scripts": [
        "gimm-interpolate=gimm_trt.cli:interpolate",
        "gimm-bench=gimm_trt.cli:bench",
        "gimm-export=gimm_trt.cli:export",
    ]},
)
