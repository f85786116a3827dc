// Placeholder until the screen lands.
export default async function screen(ctx) {
  return ctx.h("h1", null, "records");
}
