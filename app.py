"""The diffusion model zoo: one Gradio app, one tab per family of models.

    python app.py            # http://127.0.0.1:7860 (or $GRADIO_SERVER_PORT)

Layout and wiring only; every tab is built in ui/ and backed by a module in zoo/.
"""
import os

import gradio as gr

from ui import serving
from ui.guidance_tab import build_guidance_tab
from ui.pixels_tab import build_pixels_tab
from ui.schedules_tab import build_schedules_tab
from ui.text2image_tab import build_text2image_tab
from ui.toy_tab import build_toy_tab
from ui.zoo_tab import build_zoo_tab
from zoo.diffusion.solvers import RECORDS

TITLE = "Diffusion model zoo"
TABS = (("Toy 2D", "toy", build_toy_tab), ("Unconditional", "pixels", build_pixels_tab),
        ("Guidance", "guidance", build_guidance_tab), ("Text to image", "text2image", build_text2image_tab),
        ("Noise schedules", "schedules", build_schedules_tab))  # the Model zoo tab comes last: it opens repos for them


def build_app() -> gr.Blocks:
    # delete_cache: previews and downloads older than CACHE_AGE go, checked every 10 minutes
    with gr.Blocks(title=TITLE, delete_cache=(600, serving.CACHE_AGE)) as demo:
        solvers = ", ".join(record.title for record in RECORDS.values())
        gr.Markdown(f"# {TITLE}\nTrain, sample and compare diffusion models: exact math, selectable solvers "
                    f"({solvers}) and step counts.")
        parts = []
        for title, tab_id, build in TABS:
            with gr.Tab(title, id=tab_id):
                parts.append(build())
        with gr.Tab("Model zoo", id="zoo"):
            build_zoo_tab([target for part in parts for target in part.targets])
        for fn, inputs, output in (view for part in parts for view in part.on_load):  # drawn when a visitor arrives
            demo.load(fn, inputs, output, api_name=False)
    return demo


def main():
    demo = build_app()
    serving.queue(demo).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )


if __name__ == "__main__":
    main()
