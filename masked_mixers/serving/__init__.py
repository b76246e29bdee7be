"""`masked-mixers serve`: an OpenAI-compatible completions server (api.py) over a batching engine (engine.py).

Needs the `serve` extra (FastAPI, uvicorn): `pip install "masked-mixers[serve]"`.
"""
