// A forward, backward and optimizer step written against the generated types (afnio.d.ts). CI compiles
// it with `tsc --strict` (scripts/generate-clients.sh --check), so an API change that breaks TypeScript
// callers fails the build. Run it with Node 18+ after compiling: node loop.js BASE_URL PROJECT_KEY MODEL_ID
import type { components, paths } from "./afnio";

type Schemas = components["schemas"];
type Variable = Schemas["VariableResponse"];
type Job = Schemas["JobResponse"];
type Body<P extends keyof paths, M extends "post" | "put" | "patch"> =
    paths[P][M] extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;

export class Afnio {
    constructor(private readonly baseUrl: string, private readonly key: string) {}

    async send<T>(method: string, path: string, body?: unknown): Promise<T> {
        const response = await fetch(this.baseUrl + path, {
            method,
            headers: { Authorization: `Bearer ${this.key}`, "Content-Type": "application/json" },
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        if (!response.ok) {
            const problem = (await response.json()) as Schemas["ProblemDetails"] & { code?: string };
            throw new Error(`${response.status} ${method} ${path}: ${problem.code ?? ""} ${problem.detail ?? ""}`);
        }
        return (await response.json()) as T;
    }

    variable(body: Body<"/v1/variables", "post">): Promise<Variable> {
        return this.send("POST", "/v1/variables", body);
    }

    async call(name: string, args: Record<string, unknown>): Promise<Variable> {
        const result = await this.send<Schemas["FunctionResponse"]>("POST", `/v1/functions/${name}`, args);
        return result.outputs[0];
    }

    async wait(job: Job): Promise<Job> {
        while (job.status === "queued" || job.status === "running" || job.status === "cancelling") {
            job = await this.send<Job>("GET", `/v1/jobs/${job.id}?wait_seconds=30`);
        }
        if (job.status !== "succeeded") {
            throw new Error(`${job.type} ${job.status}: ${job.error?.code} ${job.error?.message}`);
        }
        return job;
    }
}

/** One TGD step on a system prompt, judged by exact match against a gold answer. */
export async function optimizeOnce(afnio: Afnio, modelId: string): Promise<Variable> {
    const backwardModel: Body<"/v1/backward_model", "put"> = { model_id: modelId };
    await afnio.send("PUT", "/v1/backward_model", backwardModel);
    const prompt = await afnio.variable({ data: "Answer the question.", role: "system prompt", is_parameter: true });
    const question = await afnio.variable({ data: "What is 2 + 2?", role: "question" });
    const gold = await afnio.variable({ data: "4", role: "expected answer" });

    const answer = await afnio.call("chat_completion", {
        model_id: modelId,
        messages: [{ role: "system", content: [prompt.id] }, { role: "user", content: [question.id] }],
    });
    const score = await afnio.call("exact_match_evaluator", { prediction: answer.id, target: gold.id });

    const backward: Body<"/v1/backward", "post"> = { variables: [score.id] };
    await afnio.wait(await afnio.send<Job>("POST", "/v1/backward", backward));

    const optimizer: Body<"/v1/optimizers", "post"> = { type: "tgd", params: [prompt.id], model_id: modelId };
    const created = await afnio.send<Schemas["OptimizerResponse"]>("POST", "/v1/optimizers", optimizer);
    await afnio.wait(await afnio.send<Job>("POST", `/v1/optimizers/${created.id}/step`, {}));
    return afnio.send<Variable>("GET", `/v1/variables/${prompt.id}`);
}
