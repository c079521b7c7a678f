// The admin panel's map of custom components: the demo and the payloadStock plugin add none.
export const importMap = {};
